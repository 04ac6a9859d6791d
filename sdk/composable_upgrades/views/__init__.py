"""Reading back: plan diffs, stage status, run history."""
