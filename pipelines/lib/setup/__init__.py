"""First run: the doctor's checks and the demo's plan."""
