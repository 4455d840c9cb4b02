"""Generated documentation: the contract pages and their Markdown helpers."""
