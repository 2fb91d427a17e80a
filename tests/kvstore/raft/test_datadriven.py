"""Data-driven scenarios: ``testdata/*.txt`` holds commands and the exact output expected.

Each block is a command line, a ``----`` line, and the expected output, separated from the
next block by a blank line. The output of ``stabilize`` lists every message delivered (or
dropped), so a file reads as a protocol trace that a reviewer can check step by step.

To regenerate the expected outputs after an intended behaviour change, run with
``KVSTORE_RAFT_REWRITE=1`` and review the diff.

Commands (ids are node ids):
    cluster voters=1,2,3 [learners=4] [pre_vote=false] [check_quorum=false]
    campaign ID | propose ID DATA | read ID CTX | transfer ID TARGET
    conf ID add|remove|learner NODE     propose a membership change at ID
    add-empty ID                        start a joining node with an empty disk
    tick ID|all [N]                     N ticks, no delivery
    stabilize                           deliver everything in flight, printing it
    deliver N                           deliver at most N messages, printing them
    isolate ID | drop TYPE | heal | compact ID | report-snapshot ID NODE ok|fail | restart ID
    status                              one line per node
    log ID                              the node's entries
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kvstore.raft import ConfigError, ProposalDropped
from kvstore.raft.types import (
    ConfChange,
    ConfChangeType,
    EntryType,
    Message,
    MessageType,
    StateType,
)

from .network import Cluster

TESTDATA = Path(__file__).parent / "testdata"
REWRITE = os.environ.get("KVSTORE_RAFT_REWRITE") == "1"
_CONF = {
    "add": ConfChangeType.ADD_NODE,
    "remove": ConfChangeType.REMOVE_NODE,
    "learner": ConfChangeType.ADD_LEARNER,
}


def describe(m: Message) -> str:
    """A compact, stable rendering of a message."""
    parts = [f"{m.from_}->{m.to} {m.type.name} t{m.term}"]
    if m.type in (m.type.APP, m.type.VOTE, m.type.PRE_VOTE) or m.index or m.log_term:
        parts.append(f"i{m.index}/t{m.log_term}")
    if m.commit:
        parts.append(f"c{m.commit}")
    if m.entries:
        ents = ",".join(
            f"{e.index}/t{e.term}" + (f":{e.data.decode(errors='replace')}" if e.data else "")
            if e.type == EntryType.NORMAL
            else f"{e.index}/t{e.term}:conf"
            for e in m.entries
        )
        parts.append(f"[{ents}]")
    if m.reject:
        parts.append(f"reject hint={m.reject_hint}")
    if m.snapshot is not None:
        md = m.snapshot.metadata
        parts.append(f"snap={md.index}/t{md.term} voters={sorted(md.conf_state.voters)}")
    if m.context:
        parts.append(f"ctx={m.context.decode(errors='replace')}")
    return " ".join(parts)


class Runner:
    """Executes commands against a Cluster and renders their output."""

    def __init__(self) -> None:
        self.c: Cluster | None = None

    @property
    def cluster(self) -> Cluster:
        assert self.c is not None, "the file must start with a cluster command"
        return self.c

    def run(self, line: str) -> str:
        cmd, *args = line.split()
        handler = getattr(self, "cmd_" + cmd.replace("-", "_"))
        try:
            out: str = handler(*args)
        except (ProposalDropped, ConfigError) as exc:
            out = f"error: {type(exc).__name__}: {exc}"
        return out

    def cmd_cluster(self, *args: str) -> str:
        opts = dict(a.split("=", 1) for a in args)
        ids = [int(x) for x in opts.pop("voters").split(",")]
        learners = [int(x) for x in opts.pop("learners", "").split(",") if x]
        flags = {k: v == "true" for k, v in opts.items()}
        self.c = Cluster(ids, learners, **flags)
        return "ok"

    def cmd_campaign(self, nid: str) -> str:
        self.cluster[int(nid)].node.campaign()
        self.cluster.process(int(nid))
        return "ok"

    def cmd_propose(self, nid: str, data: str) -> str:
        self.cluster[int(nid)].node.propose(data.encode())
        self.cluster.process(int(nid))
        return "ok"

    def cmd_read(self, nid: str, ctx: str) -> str:
        self.cluster[int(nid)].node.read_index(ctx.encode())
        self.cluster.process(int(nid))
        return "ok"

    def cmd_transfer(self, nid: str, target: str) -> str:
        self.cluster[int(nid)].node.transfer_leader(int(target))
        self.cluster.process(int(nid))
        return "ok"

    def cmd_conf(self, nid: str, kind: str, node: str) -> str:
        self.cluster[int(nid)].node.propose_conf_change(ConfChange(_CONF[kind], int(node)))
        self.cluster.process(int(nid))
        return "ok"

    def cmd_add_empty(self, nid: str) -> str:
        self.cluster.add_empty(int(nid))
        return "ok"

    def cmd_tick(self, who: str, n: str = "1") -> str:
        ids = sorted(self.cluster.members) if who == "all" else [int(who)]
        for _ in range(int(n)):
            for nid in ids:
                if nid not in self.cluster.down:
                    self.cluster.tick(nid)
        return "ok"

    def cmd_stabilize(self) -> str:
        c = self.cluster
        c.process_all()
        lines = []
        while c.queue:
            m = c.queue.pop(0)
            if not c._passes(m):
                lines.append("dropped: " + describe(m))
                continue
            lines.append(describe(m))
            c[m.to].node.step(m)
            c.process(m.to)
        return "\n".join(lines) or "(nothing in flight)"

    def cmd_deliver(self, n: str) -> str:
        """Deliver at most ``n`` messages (FIFO), printing them."""
        c = self.cluster
        c.process_all()
        lines = []
        for _ in range(int(n)):
            if not c.queue:
                break
            m = c.queue.pop(0)
            if not c._passes(m):
                lines.append("dropped: " + describe(m))
                continue
            lines.append(describe(m))
            c[m.to].node.step(m)
            c.process(m.to)
        return "\n".join(lines) or "(nothing in flight)"

    def cmd_drop(self, kind: str) -> str:
        """Drop every message of type ``kind`` (until ``heal``)."""
        self.cluster.drop_types.add(MessageType[kind])
        return "ok"

    def cmd_isolate(self, nid: str) -> str:
        self.cluster.isolated.add(int(nid))
        return "ok"

    def cmd_heal(self) -> str:
        self.cluster.heal()
        return "ok"

    def cmd_compact(self, nid: str) -> str:
        m = self.cluster[int(nid)]
        applied = m.node.raft.raft_log.applied
        m.storage.create_snapshot(applied, m.conf, b"")
        m.storage.compact(applied)
        return f"snapshot at {applied}, first index {m.storage.first_index()}"

    def cmd_report_snapshot(self, nid: str, node: str, outcome: str) -> str:
        self.cluster[int(nid)].node.report_snapshot(int(node), outcome == "ok")
        self.cluster.process(int(nid))
        return "ok"

    def cmd_restart(self, nid: str) -> str:
        self.cluster.restart(int(nid))
        return "ok"

    def cmd_status(self) -> str:
        lines = []
        for nid, m in sorted(self.cluster.members.items()):
            st = m.node.status()
            role = st.soft_state.state.name
            extra = ""
            if st.soft_state.state == StateType.LEADER:
                extra = " progress=" + ",".join(
                    f"{p}:{pr.state.name.lower()}@{pr.match}" for p, pr in st.progress.items()
                )
            reads = ",".join(f"{r.request_ctx.decode()}@{r.index}" for r in m.read_states)
            lines.append(
                f"{nid}: {role} term={st.hard_state.term} lead={st.soft_state.lead} "
                f"commit={st.hard_state.commit} applied={st.applied} "
                f"last={m.node.raft.raft_log.last_index()} "
                f"voters={sorted(st.conf_state.voters)}"
                + (f" learners={sorted(st.conf_state.learners)}" if st.conf_state.learners else "")
                + (f" reads={reads}" if reads else "")
                + extra
            )
        return "\n".join(lines)

    def cmd_log(self, nid: str) -> str:
        ents = self.cluster[int(nid)].node.raft.raft_log.all_entries()
        return (
            " ".join(
                f"{e.index}/t{e.term}" + (f":{e.data.decode()}" if e.data and not e.type else "")
                for e in ents
            )
            or "(empty)"
        )


Block = tuple[str, str, str]
"""(comment lines before the command, command, expected output)."""


def parse(text: str) -> list[Block]:
    """The blocks of a file; ``#`` lines before a command are kept as its comment."""
    blocks: list[Block] = []
    lines = text.splitlines()
    comment: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("#"):
            comment.append(line)
            continue
        if not line.strip():
            continue
        assert i < len(lines) and lines[i] == "----", f"expected ---- after {line!r}"
        i += 1
        out = []
        while i < len(lines) and lines[i] != "":
            out.append(lines[i])
            i += 1
        blocks.append(("".join(c + "\n" for c in comment), line, "\n".join(out)))
        comment = []
    return blocks


def render(blocks: list[Block]) -> str:
    """The file text for ``blocks`` (used to rewrite expected outputs)."""
    return "\n".join(f"{com}{cmd}\n----\n{out}\n" for com, cmd, out in blocks)


FILES = sorted(TESTDATA.glob("*.txt"))


def test_there_are_scenario_files() -> None:
    assert len(FILES) >= 4


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_scenario_file(path: Path) -> None:
    blocks = parse(path.read_text())
    runner = Runner()
    got = [(com, cmd, runner.run(cmd)) for com, cmd, _ in blocks]
    if REWRITE:
        path.write_text(render(got))
        return
    for (_, cmd, want), (_, _, have) in zip(blocks, got, strict=True):
        assert have == want, f"{path.name}: {cmd}\n--- want\n{want}\n--- got\n{have}"
