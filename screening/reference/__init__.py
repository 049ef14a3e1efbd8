"""Reference data the command center sets up: districts, sampling points, labs."""
