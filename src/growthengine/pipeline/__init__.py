"""The pipeline: stages that read the event log by cursor in batches, and the workers that run them."""
