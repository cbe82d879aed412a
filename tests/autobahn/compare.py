"""Compares two agents' Autobahn results case by case (behavior and behaviorClose).

usage: compare.py [--ids-out FILE] INDEX_A AGENT_A INDEX_B AGENT_B [INDEX_A AGENT_A INDEX_B AGENT_B]...

Each group of four is one round; an INDEX is an index.json written by wstest or kosoku, an empty
AGENT means the file's only agent. The first round defines the cases. Later rounds re-ran only
the cases that differed. A case passes when some outcome (behavior, behaviorClose) of B is also
an outcome of A in any round: some cases depend on how TCP segments the frames, and even the
backend tested directly gives OK in one run and NON-STRICT in the next. Cases that needed a
recheck are listed as "agreed on recheck".

Two differences are accepted, each listed on its own line: a case that is NON-STRICT directly
and OK through wsgate (wsgate delivers the echo of the messages before a client's protocol
error, then closes with 1002); and when the backend fails a connection by dropping TCP without a close
frame, wsgate sends the client close 1001 ("backend went away") rather than dropping it too. Such
cases pass when their verdict (behavior) is the same; they are listed separately.

Prints A's own results, the cases that still differ, and the closing line `N passed, N failed`.
--ids-out writes the ids still differing, one per line. Exit 1 on any difference or when no case
was compared. Runs on Python 2.7 and 3.
"""
from __future__ import print_function

import json
import sys


def load(path, agent):
    with open(path) as f:
        index = json.load(f)
    if not agent:
        if len(index) != 1:
            sys.exit("%s: %d agents (%s), name one" % (path, len(index), ", ".join(sorted(index))))
        agent = list(index)[0]
    if agent not in index:
        sys.exit("%s: no agent %r (have %s)" % (path, agent, ", ".join(sorted(index))))
    return agent, index[agent]


def case_key(case_id):
    return [int(p) if p.isdigit() else p for p in case_id.split(".")]


def show(seen):
    if not seen:
        return "(missing)"
    return " | ".join("%s/%s" % o for o in sorted(seen))


def outcomes(result):
    if result is None:
        return set()
    return {(result.get("behavior"), result.get("behaviorClose"))}


def backend_vanished(ra, rb):
    """The one documented difference: the backend failed the connection by dropping TCP (no
    close code seen directly, close behaviour OK), and wsgate told the client with close 1001
    ("backend went away") instead of dropping it too. The verdict itself must be the same."""
    return (ra is not None and rb is not None and
            ra.get("behavior") == rb.get("behavior") and
            ra.get("remoteCloseCode") is None and ra.get("behaviorClose") == "OK" and
            rb.get("remoteCloseCode") == 1001)


def stricter(ra, rb):
    """wsgate passes strictly where the backend alone passes only non-strictly: after a client's
    protocol error wsgate still delivers what the backend sent for the messages before it, so
    the echo the case waits for arrives, and then closes with 1002."""
    return (ra is not None and rb is not None and
            ra.get("behavior") == "NON-STRICT" and ra.get("behaviorClose") == "OK" and
            rb.get("behavior") == "OK" and rb.get("behaviorClose") == "OK")


def main(argv):
    ids_out = None
    if len(argv) > 2 and argv[1] == "--ids-out":
        ids_out = argv[2]
        argv = argv[:1] + argv[3:]
    args = argv[1:]
    if not args or len(args) % 4:
        sys.exit(__doc__)
    rounds = []
    for i in range(0, len(args), 4):
        name_a, a = load(args[i], args[i + 1])
        name_b, b = load(args[i + 2], args[i + 3])
        rounds.append((a, b))
    first_a, first_b = rounds[0]
    cases = sorted(set(first_a) | set(first_b), key=case_key)

    passed, failed, rechecked, rows, vanished, better = 0, 0, [], [], [], []
    for case in cases:
        seen_a, seen_b = set(), set()
        agreed_at = None
        for n, (a, b) in enumerate(rounds):
            seen_a |= outcomes(a.get(case))
            seen_b |= outcomes(b.get(case))
            if seen_a & seen_b:
                agreed_at = n
                break
        if agreed_at is None and any(backend_vanished(a.get(case), b.get(case)) for a, b in rounds):
            passed += 1
            vanished.append(case)
        elif agreed_at is None and any(stricter(a.get(case), b.get(case)) for a, b in rounds):
            passed += 1
            better.append(case)
        elif agreed_at is not None:
            passed += 1
            if agreed_at > 0:
                rechecked.append(case)
        else:
            failed += 1
            rows.append((case, show(seen_a), show(seen_b)))

    tally = {}
    for r in first_a.values():
        key = "%s/%s" % (r.get("behavior"), r.get("behaviorClose"))
        tally[key] = tally.get(key, 0) + 1
    print("%s on its own: %s" % (name_a, ", ".join("%d %s" % (n, k) for k, n in sorted(tally.items()))))
    if rechecked:
        print("agreed on recheck: %s" % " ".join(rechecked))
    if better:
        print("stricter through wsgate (OK where the backend alone is NON-STRICT): %s" % " ".join(better))
    if vanished:
        print("same verdict; the backend dropped TCP and wsgate sent close 1001 (documented): %s"
              % " ".join(vanished))
    if rows:
        width = max(len(r[1]) for r in rows + [("", name_a, "")])
        print("differences (%s vs %s; behavior/behaviorClose seen in any round):" % (name_a, name_b))
        print("  %-10s %-*s  %s" % ("case", width, name_a, name_b))
        for case, sa, sb in rows:
            print("  %-10s %-*s  %s" % (case, width, sa, sb))
    if ids_out:
        with open(ids_out, "w") as f:
            for case, _, _ in rows:
                f.write(case + "\n")
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
