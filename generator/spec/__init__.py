"""The input side, pure: YAML with places (:mod:`.loader`), JSON Schema validation with
"did you mean" (:mod:`.schema`), the config repository and its environment overrides
(:mod:`.config`), and the bot's status files (:mod:`.status`).

Part of the pure core: imports nothing of the IO shell (git, HTTP, the clock); it reads only
the repository's own input files.
"""
