"""Results out to the health-code platform: a numbered feed of standing changes."""
