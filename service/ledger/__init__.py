"""The ledger (台账): issues, their states and history, dedup, regions and 回头看 verification."""
