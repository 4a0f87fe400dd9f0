"""One router per resource; each is thin and calls the matching service module."""
