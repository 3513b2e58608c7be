"""Multi-step recipes that produce a model from `patrol` commands (`patrol recipes ...`)."""
