"""Around git, for people: the rendered diff of a change (:mod:`.diff`), publishing rendered
output to a deploy repository (:mod:`.publish`), and scaffolding a config repository
(:mod:`.scaffold`).
"""
