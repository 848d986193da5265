"""Many commits at once, written as one git pack: the rollout bot's commit path at scale.

A tick that moves 5,000 rollouts makes 5,000 commits, one per app (so ``git revert`` of one
app's step keeps working). Each of them has its own copy of every tree on the way to the
files it changes; ``status/<env>/`` and ``rendered/<env>/<namespace>/`` hold one entry per
app, so every commit writes two trees of 5,000 entries. ``git fast-import`` formats every
entry of such a tree again for every commit (most of its time goes to ``printf``), which
grows with apps x commits: 30 s for 5,000 apps.

:func:`write_commits` keeps each tree as a list of its encoded entries, sorted as git sorts
them, replaces the entries a commit changes, and writes the new tree as a delta against its
previous version (the entry replaced, everything else copied), so a commit costs what it
changes plus the SHA-1 of each changed tree from its first changed entry on: the hash's state
is kept every :data:`HASH_STEP` bytes of a tree (``hashlib``'s ``copy``), and a tree whose
entries before a point have not changed resumes there (SHA-1 reads left to right). A file
whose bytes are already the tree's is not written again. The objects go into one pack with its index
(``git help gitformat-pack``: pack version 2, ``OFS_DELTA`` objects, index version 2), in
the repository's object directory; then ``git update-ref`` moves the branch from the old
head to the new one (refused if the branch moved meanwhile). Git reads the result as any
other pack; ``git fsck`` checks it.

Only SHA-1 repositories are written this way (the caller falls back to ``git fast-import``
for others).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import os
import subprocess
import tempfile
import zlib
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

#: Longest delta chain a tree gets (git's ``pack.depth``). At its end the next version is a
#: delta against the tree's last whole version, of every entry changed since (a chain of its
#: own starts there), until more than :data:`REBASE_MAX` entries have changed since: then the
#: tree is written whole again. A wide directory that changes one entry per commit is written
#: whole once every few hundred commits, not every 50.
MAX_DEPTH = 50
#: Entries changed since a tree's last whole version beyond which it is written whole again.
REBASE_MAX = 512
#: Trees smaller than this are written whole (a delta saves nothing).
DELTA_MIN = 4096
#: Bytes of a tree between two kept states of its SHA-1.
HASH_STEP = 8192
#: Objects up to this size are deflated with a 4 KiB window (``wbits`` 12, ``memLevel`` 4): a
#: valid zlib stream of about the same size (not the same bytes: the header names the window),
#: for a tenth of the set-up cost of zlib's default 32 KiB window and 256 KiB of hash tables,
#: which is most of the cost of deflating a small object.
SMALL_OBJECT = 4096

_COMMIT, _TREE, _BLOB, _OFS_DELTA = 1, 2, 3, 6
_TREE_MODE = b"40000"
_FILE_MODE = b"100644"


class PackError(Exception):
    """Git could not read the base tree or move the branch; ``str()`` says what git said."""


def _git(root: Path, args: Sequence[str], data: bytes | None = None) -> bytes:
    done = subprocess.run(["git", *args], cwd=root, input=data, capture_output=True)
    if done.returncode:
        raise PackError(" ".join(done.stderr.decode(errors="replace").split()) or f"git {args[0]} failed")
    return done.stdout


class _Tree:
    """One directory of the tree being edited: its entries encoded as git writes them
    (``mode SP name NUL sha``), kept sorted by git's tree order (a directory sorts as
    ``name/``)."""

    __slots__ = ("keys", "entries", "where", "children", "sha", "base_sha", "offset", "depth", "changed", "old_bytes",
                 "dirty", "starts", "hashed", "whole_offset", "since_whole")

    def __init__(self, raw: bytes | None) -> None:
        self.keys: list[bytes] = []
        self.entries: list[bytes] = []
        self.children: dict[bytes, _Tree] = {}
        self.sha: bytes | None = None  # the tree's id; None once an entry below it changed
        self.base_sha: bytes | None = None  # the id of its last version written (or read)
        self.offset: int | None = None  # where that version lies in the pack being written
        self.depth = 0  # its delta chain's length there
        self.whole_offset: int | None = None  # where its last whole version lies in the pack
        self.since_whole: set[int] | None = None  # entries replaced since then; None: entries moved
        self.changed: set[int] | None = set()  # entries replaced since; None: entries moved
        self.old_bytes: bytearray | None = None  # that version's bytes (changed in place)
        self.dirty: set[bytes] = set()  # subdirectories changed since
        self.starts: list[int] = []  # where each entry begins in old_bytes (while changed is a set)
        self.hashed: list[tuple[int, "hashlib._Hash"]] = []  # (n, SHA-1 of header + old_bytes[:n]) per HASH_STEP
        pos, n = 0, len(raw or b"")
        if raw:
            self.old_bytes = bytearray(raw)
        while pos < n:
            space = raw.index(b" ", pos)
            nul = raw.index(b"\0", space)
            mode, name = raw[pos:space], raw[space + 1:nul]
            end = nul + 21
            self.keys.append(name + b"/" if mode == _TREE_MODE else name)
            self.entries.append(raw[pos:end])
            self.starts.append(pos)
            pos = end
        self.where = {key: i for i, key in enumerate(self.keys)}

    def get(self, name: bytes) -> tuple[bytes, bytes] | None:
        """``(mode, sha)`` of the entry ``name`` (file or directory), or ``None``."""
        for key in (name, name + b"/"):
            i = self.where.get(key)
            if i is not None:
                entry = self.entries[i]
                return entry[:entry.index(b" ")], entry[-20:]
        return None

    def set(self, name: bytes, mode: bytes, sha: bytes) -> None:
        other = name if mode == _TREE_MODE else name + b"/"
        if other in self.where:  # a file becomes a directory or the other way round
            self.remove(other.rstrip(b"/") if other.endswith(b"/") else other, kind=other)
        key = name + b"/" if mode == _TREE_MODE else name
        entry = mode + b" " + name + b"\0" + sha
        i = self.where.get(key)
        if i is not None:
            if self.entries[i] != entry:
                if len(self.entries[i]) != len(entry):
                    self.changed = None  # the entries after it move
                self.entries[i] = entry
                self._touch(i)
            return
        i = bisect.bisect_left(self.keys, key)
        self.keys.insert(i, key)
        self.entries.insert(i, entry)
        self.where = {k: j for j, k in enumerate(self.keys)}
        self.changed, self.sha = None, None  # entries moved: no delta by position this time

    def remove(self, name: bytes, kind: bytes | None = None) -> None:
        for key in ((kind,) if kind else (name, name + b"/")):
            i = self.where.get(key)
            if i is None:
                continue
            del self.keys[i], self.entries[i]
            self.where = {k: j for j, k in enumerate(self.keys)}
            self.children.pop(name, None)
            self.changed, self.sha = None, None
            return

    def _touch(self, i: int) -> None:
        if self.changed is not None:
            self.changed.add(i)
        self.sha = None

    def digest(self, body: bytearray, first: int) -> bytes:
        """The tree id of ``body``, whose bytes before ``first`` are those hashed last time
        (the kept states up to there are reused; those after it are made again)."""
        hashed = self.hashed
        while hashed and hashed[-1][0] > first:
            hashed.pop()
        if hashed:
            done, state = hashed[-1]
            sha = state.copy()
        else:
            done, sha = 0, hashlib.sha1(b"tree %d\0" % len(body))
        with memoryview(body) as view:
            for mark in range(done + HASH_STEP, len(body), HASH_STEP):
                sha.update(view[done:mark])
                hashed.append((mark, sha.copy()))
                done = mark
            sha.update(view[done:])
        return sha.digest()


class _PackWriter:
    """Objects appended to one pack file, with what its index needs."""

    def __init__(self, file) -> None:
        self.file = file
        self.offset = 12
        self.index: dict[bytes, tuple[int, int]] = {}  # sha -> (offset, crc32)
        header = b"PACK" + (2).to_bytes(4, "big") + b"\0\0\0\0"  # the count is patched at the end
        file.write(header)

    def _write(self, sha: bytes, kind: int, size: int, body: bytes, extra: bytes = b"") -> int:
        head = bytearray()
        byte = (kind << 4) | (size & 15)
        size >>= 4
        while size:
            head.append(byte | 0x80)
            byte = size & 0x7F
            size >>= 7
        head.append(byte)
        if len(body) <= SMALL_OBJECT:
            deflate = zlib.compressobj(1, zlib.DEFLATED, 12, 4)
            data = bytes(head) + extra + deflate.compress(body) + deflate.flush()
        else:
            data = bytes(head) + extra + zlib.compress(body, 1)
        offset = self.offset
        self.file.write(data)
        self.offset += len(data)
        self.index[sha] = (offset, zlib.crc32(data))
        return offset

    def whole(self, kind: int, body: bytes, known: bytes | None = None) -> tuple[bytes, int | None]:
        """Write an object whole; returns its id and offset (``None`` when already written
        here, or when its id is ``known``: the repository has it)."""
        sha = hashlib.sha1(_TYPES[kind] + b" %d\0" % len(body) + body).digest()
        if sha in self.index or sha == known:
            return sha, None
        return sha, self._write(sha, kind, len(body), body)

    def delta(self, sha: bytes, base: int, delta: bytes) -> int:
        offset = self.offset
        distance = offset - base
        encoded = bytearray([distance & 0x7F])
        distance >>= 7
        while distance:
            distance -= 1
            encoded.insert(0, 0x80 | (distance & 0x7F))
            distance >>= 7
        return self._write(sha, _OFS_DELTA, len(delta), delta, bytes(encoded))


_TYPES = {_COMMIT: b"commit", _TREE: b"tree", _BLOB: b"blob"}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _copy(offset: int, size: int) -> bytes:
    """Delta copy instructions for ``size`` bytes from ``offset`` of the base."""
    out = bytearray()
    while size:
        chunk = min(size, 0xFFFFFF)
        op, args = 0x80, bytearray()
        for i in range(4):
            byte = (offset >> (8 * i)) & 0xFF
            if byte:
                op |= 1 << i
                args.append(byte)
        for i in range(3):
            byte = (chunk >> (8 * i)) & 0xFF
            if byte:
                op |= 0x10 << i
                args.append(byte)
        out.append(op)
        out += args
        offset += chunk
        size -= chunk
    return bytes(out)


def _insert(data: bytes) -> bytes:
    out = bytearray()
    for i in range(0, len(data), 127):
        piece = data[i:i + 127]
        out.append(len(piece))
        out += piece
    return bytes(out)


class _Editor:
    """The tree of one commit after another, starting from a base tree read from git."""

    def __init__(self, root: Path, base_tree: str, paths: Iterable[str]) -> None:
        self.root_dir = root
        self.top = self._load({b"": base_tree}, paths)

    def _load(self, top: Mapping[bytes, str], paths: Iterable[str]) -> _Tree:
        """Read, level by level, every tree on the way to ``paths`` (one ``git cat-file``
        per level)."""
        wanted: dict[bytes, set[bytes]] = {}  # directory -> its subdirectories on the way
        for path in paths:
            parts = path.encode().split(b"/")
            for depth in range(len(parts) - 1):
                wanted.setdefault(b"/".join(parts[:depth]), set()).add(parts[depth])
        trees: dict[bytes, _Tree] = {}
        level = dict(top)
        while level:
            names = list(level)
            shas = [level[n] for n in names]
            out = _git(self.root_dir, ["cat-file", "--batch"], "".join(f"{s}\n" for s in shas).encode())
            pos, following = 0, {}
            for name in names:
                eol = out.index(b"\n", pos)
                header = out[pos:eol].split()
                if len(header) != 3 or header[1] != b"tree":
                    raise PackError(f"{name.decode() or 'the root'} is not a tree in HEAD")
                size = int(header[2])
                tree = _Tree(out[eol + 1:eol + 1 + size])
                tree.sha = tree.base_sha = bytes.fromhex(header[0].decode())
                pos = eol + 2 + size
                trees[name] = tree
                for child in wanted.get(name, ()):
                    found = tree.get(child)
                    if found and found[0] == _TREE_MODE:
                        following[name + b"/" + child if name else child] = found[1].hex()
            level = following
        for name, tree in trees.items():
            if name:
                parent, _, base = name.rpartition(b"/")
                trees[parent].children[base] = tree
        return trees[b""]

    def _dir(self, parts: list[bytes]) -> list[tuple[_Tree, bytes]]:
        """The trees from the top down to the directory ``parts`` (made where missing), each
        with the name of the next one in it."""
        chain, tree = [], self.top
        for part in parts:
            chain.append((tree, part))
            child = tree.children.get(part)
            if child is None:
                child = _Tree(None)
                child.changed = None
                tree.children[part] = child
            tree = child
        chain.append((tree, b""))
        return chain

    def set_file(self, path: str, data: bytes, pack: _PackWriter) -> None:
        """The file ``path`` holds ``data`` from now on; its blob goes into ``pack`` unless the
        tree holds those bytes there already (the repository has them)."""
        parts = path.encode().split(b"/")
        chain = self._dir(parts[:-1])
        folder = chain[-1][0]
        found = folder.get(parts[-1])
        sha, _ = pack.whole(_BLOB, data, found[1] if found and found[0] != _TREE_MODE else None)
        folder.set(parts[-1], _FILE_MODE, sha)
        for tree, part in chain[:-1]:
            tree.sha = None
            tree.dirty.add(part)

    def delete(self, path: str) -> None:
        parts = path.encode().split(b"/")
        chain = self._dir(parts[:-1])
        chain[-1][0].remove(parts[-1])
        for tree, part in chain[:-1]:
            tree.sha = None
            tree.dirty.add(part)

    def write(self, pack: _PackWriter) -> bytes | None:
        """Write every changed tree, bottom up; the top tree's id (``None``: it is empty)."""
        return self._write(self.top, pack)

    def _write(self, tree: _Tree, pack: _PackWriter) -> bytes | None:
        if tree.sha is not None:
            return tree.sha
        for name in sorted(tree.dirty):
            child = tree.children.get(name)
            if child is not None and child.sha is None:
                sha = self._write(child, pack)
                if sha is None:
                    tree.remove(name, kind=name + b"/")
                else:
                    tree.set(name, _TREE_MODE, sha)
        tree.dirty.clear()
        if not tree.entries:
            return None
        changed = sorted(tree.changed) if tree.changed is not None and tree.old_bytes is not None else None
        if changed is None:
            body = bytearray(b"".join(tree.entries))
            first = 0
        else:  # entries replaced in place, each as long as before: written over the old ones
            body = tree.old_bytes
            for i in changed:
                body[tree.starts[i]:tree.starts[i] + len(tree.entries[i])] = tree.entries[i]
            first = tree.starts[changed[0]] if changed else len(body)
        sha = tree.digest(body, first)
        if changed is None:
            tree.since_whole = None
        elif tree.since_whole is not None:
            tree.since_whole.update(changed)
        if sha == tree.base_sha:
            pass  # the same as its last version: nothing to write
        elif sha in pack.index:
            tree.offset, tree.depth = None, 0  # written before in this pack; its chain is not known
        elif (changed and len(changed) <= 16 and tree.offset is not None and tree.depth < MAX_DEPTH
              and len(body) >= DELTA_MIN):
            tree.offset = pack.delta(sha, tree.offset, _replacing(tree, len(body), changed))
            tree.depth += 1
        elif (tree.since_whole is not None and tree.whole_offset is not None and len(tree.since_whole) <= REBASE_MAX
              and len(body) >= DELTA_MIN):
            tree.offset = pack.delta(sha, tree.whole_offset, _replacing(tree, len(body), sorted(tree.since_whole)))
            tree.depth = 1
        else:
            _, tree.offset = pack.whole(_TREE, bytes(body))
            tree.depth = 0
            tree.whole_offset, tree.since_whole = tree.offset, set()
        if changed is None:
            tree.starts = list(itertools.accumulate(map(len, tree.entries[:-1]), initial=0)) if tree.entries else []
        tree.sha = tree.base_sha = sha
        tree.old_bytes, tree.changed = body, set()
        return sha


def _replacing(tree: _Tree, size: int, indexes: Iterable[int]) -> bytes:
    """A delta from a version of ``tree`` laid out as now (each entry where it is now, as long)
    to its current bytes (``size`` of them): the entries at ``indexes`` (ascending) inserted,
    everything between them copied."""
    delta, done = [_varint(size), _varint(size)], 0
    for i in indexes:
        start = tree.starts[i]
        delta += [_copy(done, start - done), _insert(tree.entries[i])]
        done = start + len(tree.entries[i])
    delta.append(_copy(done, size - done))
    return b"".join(delta)


def object_dir(root: Path) -> Path:
    """The repository's object directory (``git rev-parse --git-path objects``)."""
    out = _git(root, ["rev-parse", "--git-path", "objects"]).decode().strip()
    path = Path(out)
    return path if path.is_absolute() else root / path


def sha1_repository(root: Path) -> bool:
    """Whether the repository's objects are named by SHA-1 (git's default)."""
    done = subprocess.run(["git", "rev-parse", "--show-object-format"], cwd=root, capture_output=True)
    return done.returncode == 0 and done.stdout.strip() in (b"sha1", b"--show-object-format")


def write_commits(root: Path, branch: str, head: str, commits: Sequence[tuple[bytes, Mapping[str, bytes | None]]],
                  author: bytes, committer: bytes, before_update: Callable[[], None] | None = None) -> list[str]:
    """Commit each ``(message, {path: bytes or None to delete})`` in order on ``branch``.

    Args:
        root: the top of the working tree.
        branch: the branch to move (``refs/heads/<branch>``), now at ``head``.
        head: the commit the first one builds on (40 hex digits).
        commits: per commit its message and its files (files get mode 100644, as ``git
            fast-import``'s ``M 100644`` gives them).
        author, committer: ``Name <email> <seconds> <zone>`` as git writes them.
        before_update: called once the pack is in place, before the branch moves; what it
            raises is raised, the pack removed again and the branch left where it was.

    Returns:
        The new commits' ids, in order; the branch points at the last one.

    Raises:
        PackError: git failed to read ``head``'s tree or the branch moved meanwhile.
    """
    if not commits:
        return []
    paths = {p for _, files in commits for p in files}
    base = _git(root, ["rev-parse", "--verify", f"{head}^{{tree}}"]).decode().strip()
    editor = _Editor(root, base, paths)
    pack_dir = object_dir(root) / "pack"
    pack_dir.mkdir(parents=True, exist_ok=True)
    shas: list[str] = []
    fd, tmp = tempfile.mkstemp(prefix="tmp_pack_", dir=pack_dir)
    idx_tmp = None
    try:
        with os.fdopen(fd, "w+b") as file:
            pack = _PackWriter(file)
            parent = head
            for message, files in commits:
                for path, data in files.items():
                    if data is None:
                        editor.delete(path)
                    else:
                        editor.set_file(path, data, pack)
                tree = editor.write(pack)
                tree_hex = (tree or pack.whole(_TREE, b"")[0]).hex()
                body = (b"tree " + tree_hex.encode() + b"\nparent " + parent.encode() + b"\nauthor " + author
                        + b"\ncommitter " + committer + b"\n\n" + message)
                parent = pack.whole(_COMMIT, body)[0].hex()
                shas.append(parent)
            file.seek(8)
            file.write(len(pack.index).to_bytes(4, "big"))
            file.flush()
            file.seek(0)
            digest = hashlib.sha1()
            while chunk := file.read(1 << 20):
                digest.update(chunk)
            checksum = digest.digest()
            file.write(checksum)
        name = f"pack-{checksum.hex()}"
        idx_fd, idx_tmp = tempfile.mkstemp(prefix="tmp_idx_", dir=pack_dir)
        with os.fdopen(idx_fd, "wb") as file:
            file.write(_index(pack.index, checksum))
        os.chmod(tmp, 0o444)
        os.chmod(idx_tmp, 0o444)
        os.replace(tmp, pack_dir / f"{name}.pack")
        tmp = None
        os.replace(idx_tmp, pack_dir / f"{name}.idx")  # the index last: git finds packs by it
        idx_tmp = None
    finally:
        for leftover in (tmp, idx_tmp):
            if leftover:
                Path(leftover).unlink(missing_ok=True)
    if before_update is not None:
        try:
            before_update()
        except BaseException:
            for suffix in (".idx", ".pack"):  # nothing refers to them: as if never written
                (pack_dir / f"{name}{suffix}").unlink(missing_ok=True)
            raise
    _git(root, ["update-ref", "-m", f"meshgen: {len(shas)} commit(s)", f"refs/heads/{branch}", shas[-1], head])
    return shas


def _index(objects: Mapping[bytes, tuple[int, int]], checksum: bytes) -> bytes:
    """A pack index, version 2, of ``{sha: (offset, crc32)}``."""
    order = sorted(objects)
    fanout, counts = bytearray(), [0] * 256
    for sha in order:
        counts[sha[0]] += 1
    total = 0
    for count in counts:
        total += count
        fanout += total.to_bytes(4, "big")
    small, large = bytearray(), bytearray()
    for sha in order:
        offset = objects[sha][0]
        if offset < 0x80000000:
            small += offset.to_bytes(4, "big")
        else:
            small += (0x80000000 | len(large) // 8).to_bytes(4, "big")
            large += offset.to_bytes(8, "big")
    body = (b"\377tOc" + (2).to_bytes(4, "big") + bytes(fanout) + b"".join(order)
            + b"".join(objects[s][1].to_bytes(4, "big") for s in order) + bytes(small) + bytes(large) + checksum)
    return body + hashlib.sha1(body).digest()
