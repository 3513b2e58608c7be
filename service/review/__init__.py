"""The review bridge: Label Studio projects, tasks with predictions, decisions back into the ledger."""
