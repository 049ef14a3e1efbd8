"""API tokens: who may call what (admin, sampler of one point, lab of one lab)."""
