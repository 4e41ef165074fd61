#!/usr/bin/env python3
"""bench/report.py RESULTS REPORT.md: turn bench/run.sh's raw results into a table with ratios
(printed) and a markdown report (written). RESULTS has one "contender metric value" line per
figure; "machine" lines describe the machine and the run."""

import sys

CONTENDERS = [
    ("raw", "raw ssh stream"),
    ("sshL", "ssh -L"),
    ("sshuttle", "sshuttle 1.1 (nat)"),
    ("ours", "ours (our agent)"),
    ("oursdeb", "ours (Debian server)"),
]

# metric, label, unit, higher_is_better
METRICS = [
    ("up1", "1 stream up", "Mbit/s", True),
    ("down1", "1 stream down", "Mbit/s", True),
    ("up8", "8 streams up", "Mbit/s", True),
    ("down8", "8 streams down", "Mbit/s", True),
    ("conn_rate", "new connections", "conn/s", True),
    ("conn_fail", "  failed connects", "count", False),
    ("rtt_p50", "64 B RTT p50", "us", False),
    ("rtt_p99", "64 B RTT p99", "us", False),
    ("idle_target", "idle conns tried", "count", True),
    ("idle_held", "idle conns held", "count", True),
    ("idle_still", "  still open after reading RSS", "count", True),
    ("idle_rss_mb", "client RSS with idle conns held", "MB", False),
    ("idle_server_rss_mb", "server-side max RSS, idle held", "MB", False),
    ("rss_start_mb", "client RSS at start", "MB", False),
    ("rss_peak_mb", "client peak RSS before idle test", "MB", False),
    ("rss_peak_idle_mb", "client peak RSS (VmHWM) at end", "MB", False),
    ("cpu_up_proc", "CPU s/GB up, tunnel process", "s/GB", False),
    ("cpu_up_tree", "CPU s/GB up, + its ssh", "s/GB", False),
    ("cpu_up_server", "CPU s/GB up, server ns", "s/GB", False),
    ("cpu_up_serverpy", "  of which python (agent/server)", "s/GB", False),
    ("cpu_down_proc", "CPU s/GB down, tunnel process", "s/GB", False),
    ("cpu_down_tree", "CPU s/GB down, + its ssh", "s/GB", False),
    ("cpu_down_server", "CPU s/GB down, server ns", "s/GB", False),
    ("cpu_down_serverpy", "  of which python (agent/server)", "s/GB", False),
    ("survived", "tunnel alive after idle test", "", True),
]

RATIOS = [("ours", "sshuttle"), ("ours", "sshL"), ("ours", "raw"), ("oursdeb", "sshuttle")]


def load(path):
    res, machine, cmds = {}, {}, {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) < 3:
                continue
            c, m, v = parts
            if c == "machine":
                machine[m] = v.replace("_", " ") if m in ("cpu", "ssh", "python") else v
            elif m == "cmd":
                cmds[c] = v
            else:
                res.setdefault(c, {})[m] = v
    return res, machine, cmds


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def ratio(res, a, b, m):
    x, y = num(res.get(a, {}).get(m)), num(res.get(b, {}).get(m))
    if x is None or y is None or y == 0:
        return "-"
    return "%.2fx" % (x / y)


def table(res):
    present = [(c, n) for c, n in CONTENDERS if c in res]
    ratios = [(a, b) for a, b in RATIOS if a in res and b in res]
    head = ["metric"] + [n for _, n in present] + ["%s/%s" % (a, b) for a, b in ratios]
    rows = []
    for m, label, unit, _ in METRICS:
        if not any(m in res[c] for c, _ in present):
            continue
        row = ["%s (%s)" % (label, unit) if unit else label]
        row += [res[c].get(m, "-") for c, _ in present]
        row += [ratio(res, a, b, m) for a, b in ratios]
        rows.append(row)
    return head, rows


def text_table(head, rows):
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    out = []
    for r in [head] + rows:
        out.append("  ".join(str(x).ljust(widths[i]) if i == 0 else str(x).rjust(widths[i])
                             for i, x in enumerate(r)))
    return "\n".join(out)


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append("| " + " | ".join(str(x) for x in r) + " |")
    return "\n".join(out)


def targets(res):
    """(name, status, detail) for the issue's three targets."""
    out = []
    o, s, l = res.get("ours", {}), res.get("sshuttle", {}), res.get("sshL", {})
    for m, label in (("up1", "up"), ("down1", "down")):
        x, y = num(o.get(m)), num(s.get(m))
        if x is None or y is None or y == 0:
            out.append(("single-stream %s >= 4x sshuttle 1.1" % label, "not measured", ""))
        else:
            out.append(("single-stream %s >= 4x sshuttle 1.1" % label,
                        "MET" if x >= 4 * y else "MISSED",
                        "%.0f vs %.0f Mbit/s = %.2fx" % (x, y, x / y)))
    held, still, rss = num(o.get("idle_held")), num(o.get("idle_still")), num(o.get("idle_rss_mb"))
    tried = num(o.get("idle_target"))
    if held is None or rss is None:
        out.append(("15,000 idle connections, daemon RSS < 150 MB", "not measured", ""))
    else:
        ok = held >= 15000 and (still or 0) >= 15000 and rss < 150 and o.get("survived") == "yes"
        status = "MET" if ok else ("MISSED" if (tried or 0) >= 15000 else "NOT TESTED AT SCALE")
        out.append(("15,000 idle connections, daemon RSS < 150 MB", status,
                    "%d of %d held (%d still open after the RSS reading), RSS %d MB" % (
                        held, tried or 0, still or 0, rss)))
    for m, label in (("rtt_p50", "p50"), ("rtt_p99", "p99")):
        x, y = num(o.get(m)), num(l.get(m))
        if x is None or y is None or y == 0:
            out.append(("64 B RTT %s within 1.5x of ssh -L" % label, "not measured", ""))
        else:
            out.append(("64 B RTT %s within 1.5x of ssh -L" % label,
                        "MET" if x <= 1.5 * y else "MISSED",
                        "%.0f vs %.0f us = %.2fx" % (x, y, x / y)))
    return out


def main():
    res, machine, cmds = load(sys.argv[1])
    head, rows = table(res)
    print(text_table(head, rows))
    print()
    tg = targets(res)
    for name, status, detail in tg:
        print("target: %-46s %-12s %s" % (name, status, detail))
    md = ["# Benchmark report (generated by bench/run.sh; do not edit by hand)", ""]
    md += ["## Machine and run", ""]
    for k in ("date", "mode", "cores", "cpu", "mem_gb", "kernel", "nofile", "ssh", "python",
              "load_start", "load_end", "seconds", "params"):
        if k in machine:
            md.append("* %s: %s" % (k, machine[k]))
    md += ["", "## Targets (issue 3)", "", "| target | status | measured |", "|---|---|---|"]
    for name, status, detail in tg:
        md.append("| %s | **%s** | %s |" % (name, status, detail))
    md += ["", "## Figures", "",
           "Ratios are left/right of the raw figures (for RTT, RSS and CPU lower is better, so "
           "a ratio below 1 favours ours). CPU s/GB: utime+stime from /proc during the "
           "single-stream transfer divided by the bytes moved; *tunnel process* is sshuttled, "
           "sshuttle's client, or the ssh client; *+ its ssh* adds its child processes; "
           "*server ns* is every process in the server namespace (sshd, the agent or server).",
           "", md_table(head, rows), "", "## Commands", "",
           "`$CFG` is the lab's ssh_config; the lab is tests/lab/lab.sh. Workloads: iperf3 "
           "(`-t T`, `-P 1|8`, `-R` for down) to the target's iperf3; bench/benchtool "
           "(`rtt`, `connrate`, `idle`) to `benchtool serve` in the target.", ""]
    for c, name in CONTENDERS:
        if c in cmds:
            md.append("* %s: %s" % (name, cmds[c]))
    md.append("")
    if len(sys.argv) > 3:
        try:
            with open(sys.argv[3]) as f:
                md += ["", f.read().rstrip(), ""]
        except OSError:
            pass
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(md))


if __name__ == "__main__":
    main()
