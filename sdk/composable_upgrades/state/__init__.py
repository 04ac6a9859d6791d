"""What the working directory holds: the plan folder, journal, lock, run history."""
