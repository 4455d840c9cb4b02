"""When things run: the lake's calendar, the landing watch, alerts."""
