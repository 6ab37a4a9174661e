"""Remora dissector plugin: the memcached text protocol, in Python.

Requests (`set`, `get`, `delete`, `incr`, ...) and their replies
(`STORED`, `VALUE ... END`, `NOT_FOUND`, ...) become one entry each. The
protocol has no request ids: replies come back in the order of the
requests, so the n-th request that expects a reply pairs with the n-th
reply (`txn` n). A `noreply` request gets no reply and is an entry of its
own (a standalone message).

The host batches calls: `run` gets many calls on many sessions as two
byte lists and answers them in one byte list, in the flat encoding that
wit/plugin.wit documents at `run`. `Encoder` writes that encoding; the
rest is the protocol.
"""

import struct
from typing import Dict, List, Optional, Tuple

from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (
    Direction,
    FieldDecl,
    FieldType,
    FlowInfo,
    PluginInfo,
    ProbeResult,
    ProbeResult_NeedMore,
    ProbeResult_No,
    ProbeResult_Yes,
    ProtocolDecl,
    Transport,
)

NAME = "memcached"
VERSION = "0.1.0"
PORT = 11211

# Field ids (declared in `describe`, referred to by id in messages).
F_COMMAND = 1
F_KEY = 2
F_KEYS = 3
F_FLAGS = 4
F_EXPTIME = 5
F_BYTES = 6
F_NOREPLY = 7
F_RESPONSE = 8
F_VALUES = 9
F_ERROR = 10
F_KEY_COUNT = 11

STORAGE = {b"set", b"add", b"replace", b"append", b"prepend", b"cas"}
RETRIEVAL = {b"get", b"gets"}
TOUCH_RETRIEVAL = {b"gat", b"gats"}
KEYED = {b"delete", b"incr", b"decr", b"touch"}
OTHER = {
    b"stats", b"flush_all", b"version", b"verbosity", b"quit", b"shutdown",
    b"cache_memlimit", b"lru_crawler", b"slabs", b"watch", b"lru", b"misbehave",
}
COMMANDS = STORAGE | RETRIEVAL | TOUCH_RETRIEVAL | KEYED | OTHER
# Replies that go on until `END`; every other reply is one line.
MULTILINE = {b"VALUE", b"STAT", b"ITEM", b"CONFIG"}
REPLIES = MULTILINE | {
    b"END", b"STORED", b"NOT_STORED", b"EXISTS", b"NOT_FOUND", b"DELETED",
    b"TOUCHED", b"OK", b"VERSION", b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR",
    b"RESET", b"BUSY", b"BADCLASS", b"NOSPARE", b"NOTFULL", b"UNSAFE", b"SAME",
}

# memcached refuses longer command lines (2048 bytes); past that the bytes
# are not this protocol.
MAX_LINE = 8192
# What one call may answer with: the host's own limits are higher.
MAX_MESSAGES = 1024
# Keys listed per retrieval (`get` takes any number; the count is kept).
MAX_KEYS = 64
MAX_ERROR = 512
BODY_CAP_DEFAULT = 4096

KIND_REQUEST, KIND_RESPONSE, KIND_STANDALONE = 0, 1, 2
CALL = struct.Struct("<IBBHQQ")


def _text(b: bytes) -> bytes:
    """Owned text must be UTF-8: keys and lines are bytes on the wire."""
    return b.decode("utf-8", "replace").encode("utf-8")


def _int(b: bytes) -> Optional[int]:
    try:
        v = int(b)
    except ValueError:
        return None
    return v if -(1 << 63) <= v < (1 << 63) else None


class Message:
    """One message being written: its fields, in order, already encoded."""

    def __init__(self, kind: int, txn: int, start: int):
        self.head = (kind, txn, start)
        self.fields: List[bytes] = []
        self.body: Optional[Tuple[int, bytes]] = None

    def text(self, field: int, value: bytes) -> "Message":
        v = _text(value)
        self.fields.append(struct.pack("<HBBI", field, 3, 1, len(v)) + v)
        return self

    def int(self, field: int, value: int) -> "Message":
        self.fields.append(struct.pack("<HBq", field, 1, value))
        return self

    def bool(self, field: int, value: bool) -> "Message":
        self.fields.append(struct.pack("<HBB", field, 0, int(value)))
        return self

    def set_body(self, original_len: int, kept: bytes) -> "Message":
        self.body = (original_len, kept)
        return self

    def encode(self) -> bytes:
        kind, txn, start = self.head
        out = [struct.pack("<BQQI", kind, txn, start, len(self.fields))]
        out.extend(self.fields)
        if self.body is None:
            out.append(b"\x00")
        else:
            original, kept = self.body
            out.append(struct.pack("<BQBBI", 1, original, int(len(kept) < original), 0, len(kept)))
            out.append(kept)
        return b"".join(out)


class Answer:
    """A call's result: how much of its input it consumed, how many bytes
    after that to skip (a value past the body cap), an error, messages."""

    def __init__(self) -> None:
        self.consumed = 0
        self.skip = 0
        self.error: Optional[str] = None
        self.messages: List[Message] = []

    def full(self) -> bool:
        return len(self.messages) >= MAX_MESSAGES

    def encode(self) -> bytes:
        flags = 1 if self.error is not None else 0
        out = [struct.pack("<IQIB", self.consumed, self.skip, 0, flags)]
        if self.error is not None:
            e = self.error.encode("utf-8")
            out.append(struct.pack("<I", len(e)) + e)
        msgs = b"".join(m.encode() for m in self.messages)
        out.append(struct.pack("<I", len(msgs)))
        out.append(msgs)
        return b"".join(out)


def _line(buf: bytes, pos: int) -> Optional[Tuple[bytes, int]]:
    """The line at `pos` without its terminator, and where the next begins."""
    nl = buf.find(b"\n", pos)
    if nl < 0:
        return None
    end = nl - 1 if nl > pos and buf[nl - 1] == 13 else nl
    return buf[pos:end], nl + 1


class Retrieval:
    """A multi-line reply (`VALUE ... END`, `STAT ... END`) being read: it
    may span calls, and a value past the body cap is skipped, not held."""

    def __init__(self, msg: Message, word: bytes) -> None:
        self.msg = msg
        self.word = word
        self.values = 0
        self.size = 0
        self.kept = b""


class Session:
    def __init__(self, body_cap: int) -> None:
        self.body_cap = body_cap
        # Requests that expect a reply, and replies, so far: their txns.
        self.requests = 0
        self.replies = 0
        self.retrieval: Optional[Retrieval] = None

    def feed(self, d: Direction, buf: bytes, base: int, ans: Answer) -> None:
        parse = self.request if d == Direction.TO_SERVER else self.reply
        pos = 0
        while not ans.full() and ans.skip == 0:
            got = _line(buf, pos)
            if got is None:
                break
            line, nxt = got
            if len(line) > MAX_LINE:
                ans.error = f"line of {len(line)} bytes"
                pos = nxt
                continue
            step = parse(buf, pos, line, nxt, base, ans)
            if step is None:
                break
            pos = step
        ans.consumed = pos
        if ans.skip == 0 and len(buf) - pos > MAX_LINE and buf.find(b"\n", pos) < 0:
            ans.error = f"line longer than {MAX_LINE} bytes"
            ans.consumed, ans.skip = len(buf), 0

    # `request` and `reply` take the line at `pos` (without its end) and
    # where the next begins; they answer where they stopped, or None to
    # wait for more bytes.

    def request(
        self, buf: bytes, pos: int, line: bytes, nxt: int, base: int, ans: Answer
    ) -> Optional[int]:
        words = line.split()
        if not words:
            return nxt  # an empty line: memcached answers ERROR; keep going
        verb = words[0]
        noreply = words[-1] == b"noreply"
        expects_reply = not noreply and verb != b"quit"
        kind = KIND_REQUEST if expects_reply else KIND_STANDALONE
        msg = Message(kind, self.requests, base + pos)
        msg.text(F_COMMAND, verb)
        end = nxt
        if verb in STORAGE:
            size = _int(words[4]) if len(words) > 4 else None
            if size is None or size < 0:
                ans.error = f"bad storage command line: {line[:80]!r}"
                return nxt
            if nxt + size + 2 <= len(buf):
                end = nxt + size + 2
            elif size > self.body_cap and nxt + self.body_cap <= len(buf):
                # What is kept is here; the rest of the block is skipped.
                end = nxt + self.body_cap
                ans.skip = size - self.body_cap + 2
            else:
                return None  # the data block is not all here yet
            msg.text(F_KEY, words[1])
            for field, word in ((F_FLAGS, words[2]), (F_EXPTIME, words[3])):
                value = _int(word)
                if value is not None:
                    msg.int(field, value)
            msg.int(F_BYTES, size)
            msg.set_body(size, buf[nxt : nxt + min(size, self.body_cap)])
        elif verb in RETRIEVAL or verb in TOUCH_RETRIEVAL:
            keys = words[1:] if verb in RETRIEVAL else words[2:]
            if verb in TOUCH_RETRIEVAL and len(words) > 1:
                exptime = _int(words[1])
                if exptime is not None:
                    msg.int(F_EXPTIME, exptime)
            if keys:
                msg.text(F_KEY, keys[0])
            for k in keys[:MAX_KEYS]:
                msg.text(F_KEYS, k)
            msg.int(F_KEY_COUNT, len(keys))
        elif verb in KEYED and len(words) > 1:
            msg.text(F_KEY, words[1])
        if noreply:
            msg.bool(F_NOREPLY, True)
        if expects_reply:
            self.requests += 1
        ans.messages.append(msg)
        return end

    def reply(
        self, buf: bytes, pos: int, line: bytes, nxt: int, base: int, ans: Answer
    ) -> Optional[int]:
        r = self.retrieval
        if r is None:
            word = line.split(b" ", 1)[0]
            msg = Message(KIND_RESPONSE, self.replies, base + pos)
            msg.text(F_RESPONSE, word)
            if word not in MULTILINE:
                if word == b"END":
                    msg.int(F_VALUES, 0)
                elif word in (b"CLIENT_ERROR", b"SERVER_ERROR"):
                    msg.text(F_ERROR, line[len(word) + 1 :][:MAX_ERROR])
                self.finish(msg, ans)
                return nxt
            r = self.retrieval = Retrieval(msg, word)
        # One line of a multi-line reply.
        if line == b"END":
            if r.word == b"VALUE":
                r.msg.int(F_VALUES, r.values).int(F_BYTES, r.size)
                r.msg.set_body(r.size, r.kept)
            self.retrieval = None
            self.finish(r.msg, ans)
            return nxt
        words = line.split()
        if not words or words[0] != b"VALUE":
            return nxt  # STAT, ITEM, ... lines
        n = _int(words[3]) if len(words) > 3 else None
        if n is None or n < 0:
            ans.error = f"bad VALUE line: {line[:80]!r}"
            return nxt
        keep = min(n, self.body_cap) if r.values == 0 else 0
        if nxt + n + 2 <= len(buf):
            end = nxt + n + 2
        elif nxt + keep <= len(buf) and n > keep:
            end = nxt + keep
            ans.skip = n - keep + 2
        else:
            return None  # wait for the value
        if r.values == 0:
            r.kept = buf[nxt : nxt + keep]
            r.msg.text(F_KEY, words[1])
        r.values += 1
        r.size += n
        return end

    def finish(self, msg: Message, ans: Answer) -> None:
        self.replies += 1
        ans.messages.append(msg)


def _field(id: int, name: str, t: FieldType, doc: str, top: bool = False) -> FieldDecl:
    return FieldDecl(id=id, name=name, type=t, top_level=top, doc=doc)


class State:
    """What lives across calls: the sessions by id. Module-level, since the
    export class below is not guaranteed to be one object across calls."""

    sessions: Dict[int, Session] = {}
    next_id = 0
    # Read at the first `open`: this module is imported when the component
    # is built (componentize-py snapshots the initialised interpreter),
    # where host imports trap.
    body_cap: Optional[int] = None


class Dissector(exports.Dissector):
    def describe(self) -> PluginInfo:
        proto = ProtocolDecl(
            name="memcached",
            flag="memcached",
            transport=Transport.TCP,
            ports=[PORT],
            request_summary="{command} {key}",
            response_summary="{response}",
        )
        S, I, B = FieldType.STR, FieldType.INT, FieldType.BOOLEAN
        fields = [
            _field(F_COMMAND, "command", S, "The command verb (`get`, `set`).", True),
            _field(F_KEY, "key", S, "The first key of a request; of a reply, the first value's.", True),
            _field(F_KEYS, "keys", FieldType.STR_LIST, f"The keys a retrieval asks for (the first {MAX_KEYS})."),
            _field(F_KEY_COUNT, "key_count", I, "How many keys a retrieval asks for."),
            _field(F_FLAGS, "flags", I, "Client flags stored with a value."),
            _field(F_EXPTIME, "exptime", I, "Expiration time of a storage or touch."),
            _field(F_BYTES, "bytes", I, "Data bytes: stored, or returned over all values."),
            _field(F_NOREPLY, "noreply", B, "The request asked for no reply."),
            _field(F_RESPONSE, "response", S, "The reply's first word (`STORED`, `VALUE`, `END`).", True),
            _field(F_VALUES, "values", I, "Values a retrieval returned."),
            _field(F_ERROR, "error", S, "The message of a CLIENT_ERROR or SERVER_ERROR."),
        ]
        return PluginInfo(name=NAME, version=VERSION, protocols=[proto], fields=fields)

    def probe(self, flow: FlowInfo, dir: Direction, data: bytes) -> ProbeResult:
        if flow.transport != Transport.TCP:
            return ProbeResult_No()
        nl = data.find(b"\n")
        if nl < 0:
            return ProbeResult_NeedMore() if len(data) < 64 else ProbeResult_No()
        words = data[:nl].split()
        if not words:
            return ProbeResult_No()
        # Commands are lower case, replies upper case: `GET / HTTP/1.1` is
        # not memcached.
        known = COMMANDS if dir == Direction.TO_SERVER else REPLIES
        if words[0] not in known:
            return ProbeResult_No()
        # `get KEY` alone could be many a line protocol; the port tips it.
        return ProbeResult_Yes(80 if flow.server_port == PORT else 40)

    def open(self, flow: FlowInfo) -> int:
        if State.body_cap is None:
            cap = host.config("body-cap")
            State.body_cap = int(cap) if cap is not None and cap.isdigit() else BODY_CAP_DEFAULT
        State.next_id = (State.next_id + 1) & 0xFFFFFFFF
        State.sessions[State.next_id] = Session(State.body_cap)
        return State.next_id

    def takeover(self, session: int, previous: str, params: List[Tuple[str, str]]) -> None:
        pass

    def run(self, calls: bytes, data: bytes) -> bytes:
        out: List[bytes] = []
        pos = 0
        # Per (session, direction) in this batch: what the last call left
        # unconsumed, its stream offset, and how much of the next bytes it
        # asked to skip, for a `more` call.
        left: Dict[Tuple[int, int], Tuple[bytes, int, int]] = {}
        for off in range(0, len(calls), CALL.size):
            sid, kind, d, _, base, n = CALL.unpack_from(calls, off)
            ans = Answer()
            session = State.sessions.get(sid)
            if kind in (0, 1):  # feed, more
                chunk = data[pos : pos + n]
                pos += n
                buf, start = chunk, base
                if kind == 1 and (sid, d) in left:
                    rest, at, skip = left[(sid, d)]
                    if rest:
                        buf, start = rest + chunk, at
                    else:
                        buf, start = chunk[skip:], base + min(skip, len(chunk))
                if session is not None:
                    direction = Direction.TO_SERVER if d == 0 else Direction.TO_CLIENT
                    session.feed(direction, buf, start, ans)
                rest = buf[ans.consumed :]
                taken = min(ans.skip, len(rest))
                left[(sid, d)] = (rest[taken:], start + ans.consumed + taken, ans.skip - taken)
            elif kind == 2:  # gap: bytes lost; replies resynchronise by count
                if session is not None and d == 1:
                    session.replies = session.requests
                    session.retrieval = None
                left.pop((sid, d), None)
            elif kind == 4:  # close
                State.sessions.pop(sid, None)
            out.append(ans.encode())
        return b"".join(out)
