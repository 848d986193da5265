"""``meshgen import``: Istio networking objects in, app specs out.

:mod:`.read` parses Istio YAML (several documents, ``kind: List``, ``kubectl get -o yaml``
output) into objects that keep each node's place; :mod:`.convert` groups the objects that
belong together and turns them into App specs, or says per object why the spec format cannot
express it; :mod:`.write` puts the specs into a config repository. :mod:`.read` and
:mod:`.convert` are pure (no IO); :mod:`.write` is the only module that touches files.
"""
