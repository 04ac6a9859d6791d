"""Running a stage: options, host selection, batches and barriers, the executors."""
