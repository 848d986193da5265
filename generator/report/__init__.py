"""``meshgen report``: the static, offline site of the mesh and its rollouts (:mod:`.site`)."""
