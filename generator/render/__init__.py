"""Spec -> rendered YAML: checks Istio does not make (:mod:`.checks`, pure), the templates'
quoting filter (:mod:`.quoting`, pure), the renderer (:mod:`.render`), Argo CD / Flux
manifests (:mod:`.manifests`), cross-object analysis (:mod:`.analysis`, pure), writing
``rendered/`` (:mod:`.output`), the no-op cache (:mod:`.cache`) and ``meshgen explain`` on the
rendered files (:mod:`.explain`).
"""
