"""The job queue: WorkQueue and JobRunner on bullmq (decision 0025)."""
