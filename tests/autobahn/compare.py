"""Compares two agents' Autobahn results case by case (behavior and behaviorClose).

usage: compare.py [--ids-out FILE] INDEX_A AGENT_A INDEX_B AGENT_B [INDEX_A AGENT_A INDEX_B AGENT_B]...

Each group of four is one round; an INDEX is an index.json written by wstest or kosoku, an empty
AGENT means the file's only agent. The first round defines the cases. Later rounds re-ran only
the cases that differed. A case passes when some outcome (behavior, behaviorClose) of B is also
an outcome of A in any round: some cases depend on how TCP segments the frames, and even the
backend tested directly gives OK in one run and NON-STRICT in the next. Cases that needed a
recheck are listed as "agreed on recheck". Any other difference is a failure: there is no class
of accepted differences.

Prints A's own results, the counts by group, the cases that still differ, and the closing line
`N passed, N failed`.
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

    passed, failed, rechecked, rows = 0, 0, [], []
    groups = {}
    for case in cases:
        seen_a, seen_b = set(), set()
        agreed_at = None
        for n, (a, b) in enumerate(rounds):
            seen_a |= outcomes(a.get(case))
            seen_b |= outcomes(b.get(case))
            if seen_a & seen_b:
                agreed_at = n
                break
        group = groups.setdefault(case.split(".")[0], [0, 0])
        if agreed_at is not None:
            passed += 1
            group[0] += 1
            if agreed_at > 0:
                rechecked.append(case)
        else:
            failed += 1
            group[1] += 1
            rows.append((case, show(seen_a), show(seen_b)))

    tally = {}
    for r in first_a.values():
        key = "%s/%s" % (r.get("behavior"), r.get("behaviorClose"))
        tally[key] = tally.get(key, 0) + 1
    print("%s on its own: %s" % (name_a, ", ".join("%d %s" % (n, k) for k, n in sorted(tally.items()))))
    print("by group (passed/failed): %s" % ", ".join(
        "%s: %d/%d" % (g, p, f) for g, (p, f) in sorted(groups.items(), key=lambda i: int(i[0]))))
    if rechecked:
        print("agreed on recheck: %s" % " ".join(rechecked))
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
