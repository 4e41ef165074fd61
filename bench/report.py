#!/usr/bin/env python3
"""bench/report.py RESULTS REPORT.md [ANALYSIS.md]: turn bench/run.sh's raw results into tables
with ratios (printed) and a markdown report (written). RESULTS has one "contender metric value"
line per figure; "machine" lines describe the machine and the run."""

import sys

# The short-link contenders (the lab as it is), in column order.
CONTENDERS = [
    ("raw", "raw ssh stream"),
    ("sshL", "ssh -L"),
    ("sshuttle", "sshuttle 1.1 (nat)"),
    ("ours", "ours (ssh channels)"),
    ("ours2", "ours, 2 ssh conns"),
    ("oursagent", "ours (our agent)"),
    ("oursdeb", "ours (agent path, Debian server)"),
]

# The long-link contenders: the same tunnels with ssh's ProxyCommand through the delaying relay.
LONG = [
    ("raw-50", "raw ssh stream, 50 ms"),
    ("sshL-50", "ssh -L, 50 ms"),
    ("ours-50", "ours (ssh channels), 50 ms"),
    ("oursagent-50", "ours (our agent), 50 ms"),
    ("sshuttle-50", "sshuttle 1.1, 50 ms"),
]
RELAY = ("relay", "the relay alone")

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
    ("idle_tree_rss_mb", "  + its ssh, idle conns held", "MB", False),
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
    ("fallback", "fell back to the agent path", "", False),
    ("survived", "tunnel alive after idle test", "", True),
]

LONG_METRICS = [
    ("up1", "1 stream up", "Mbit/s", True),
    ("down1", "1 stream down", "Mbit/s", True),
    ("rtt_p50", "64 B RTT p50", "us", False),
    ("rtt_p99", "64 B RTT p99", "us", False),
    ("cpu_up_tree", "CPU s/GB up, + its ssh and the relay", "s/GB", False),
    ("cpu_down_tree", "CPU s/GB down, + its ssh and the relay", "s/GB", False),
    ("fallback", "fell back to the agent path", "", False),
    ("survived", "tunnel alive at the end", "", True),
]

RATIOS = [("ours", "sshL"), ("ours2", "sshL"), ("oursagent", "sshL"), ("ours", "raw"),
          ("ours", "sshuttle"), ("oursagent", "sshuttle"), ("oursdeb", "sshuttle")]
LONG_RATIOS = [("ours-50", "sshL-50"), ("oursagent-50", "sshL-50"), ("sshuttle-50", "sshL-50"),
               ("ours-50", "sshuttle-50")]


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


def table(res, contenders, metrics, ratios_wanted):
    present = [(c, n) for c, n in contenders if c in res]
    ratios = [(a, b) for a, b in ratios_wanted if a in res and b in res]
    head = ["metric"] + [n for _, n in present] + ["%s/%s" % (a, b) for a, b in ratios]
    rows = []
    for m, label, unit, _ in metrics:
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


def targets_issue3(res):
    """(name, status, detail) for issue 3's targets: ours (the default path) against sshuttle
    1.1 and ssh -L."""
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
    tried, tree = num(o.get("idle_target")), num(o.get("idle_tree_rss_mb"))
    if held is None or rss is None:
        out.append(("15,000 idle connections, daemon RSS < 150 MB", "not measured", ""))
    else:
        ok = held >= 15000 and (still or 0) >= 15000 and rss < 150 and o.get("survived") == "yes"
        status = "MET" if ok else ("MISSED" if (tried or 0) >= 15000 else "NOT TESTED AT SCALE")
        detail = "%d of %d held (%d still open after the RSS reading), RSS %d MB" % (
            held, tried or 0, still or 0, rss)
        if tree is not None:
            detail += " (%d MB with its ssh processes)" % tree
        out.append(("15,000 idle connections, daemon RSS < 150 MB", status, detail))
    for m, label in (("rtt_p50", "p50"), ("rtt_p99", "p99")):
        x, y = num(o.get(m)), num(l.get(m))
        if x is None or y is None or y == 0:
            out.append(("64 B RTT %s within 1.5x of ssh -L" % label, "not measured", ""))
        else:
            out.append(("64 B RTT %s within 1.5x of ssh -L" % label,
                        "MET" if x <= 1.5 * y else "MISSED",
                        "%.0f vs %.0f us = %.2fx" % (x, y, x / y)))
    return out


# Issue 10: the ssh path (ours) against ssh -L in the same run. (label, metric, long link?,
# kind, bound): kind "min" = ratio >= bound, "max" = ratio <= bound, "abs" = ours' own figure
# below bound.
ISSUE10 = [
    ("1 stream up >= 0.9x ssh -L", "up1", False, "min", 0.9),
    ("1 stream down >= 0.9x ssh -L", "down1", False, "min", 0.9),
    ("8 streams up >= 0.9x ssh -L", "up8", False, "min", 0.9),
    ("8 streams down >= 0.9x ssh -L", "down8", False, "min", 0.9),
    ("64 B RTT p50 <= 1.15x ssh -L", "rtt_p50", False, "max", 1.15),
    ("new connections/s >= 0.9x ssh -L", "conn_rate", False, "min", 0.9),
    ("1 stream up at 50 ms >= 0.9x ssh -L", "up1", True, "min", 0.9),
    ("1 stream down at 50 ms >= 0.9x ssh -L", "down1", True, "min", 0.9),
    ("sshuttled CPU per GB up < 0.05 s", "cpu_up_proc", False, "abs", 0.05),
    ("sshuttled CPU per GB down < 0.05 s", "cpu_down_proc", False, "abs", 0.05),
]
ISSUE10_OTHERS = ["ours2", "oursagent"]


def targets_issue10(res):
    """Rows: target, ssh -L, ours, ours/ssh -L, status, then figure and ratio of each of
    ISSUE10_OTHERS (for information; the target is ours')."""
    rows = []
    for label, m, long_link, kind, bound in ISSUE10:
        suffix = "-50" if long_link else ""
        base = num(res.get("sshL" + suffix, {}).get(m))
        fig = {c: num(res.get(c + suffix, {}).get(m)) for c in ["ours"] + ISSUE10_OTHERS}

        def show(c):
            x = fig[c]
            if x is None:
                return "-", "-"
            r = "%.2fx" % (x / base) if base else "-"
            return res[c + suffix][m], r
        ours_fig, ours_ratio = show("ours")
        x = fig["ours"]
        if kind == "abs":
            status = "not measured" if x is None else ("MET" if x < bound else "MISSED")
            ours_ratio = "-"
        elif x is None or not base:
            status = "not measured"
        elif kind == "min":
            status = "MET" if x / base >= bound else "MISSED"
        else:
            status = "MET" if x / base <= bound else "MISSED"
        base_txt = res.get("sshL" + suffix, {}).get(m, "-")
        row = [label, base_txt, ours_fig, ours_ratio, status]
        for c in ISSUE10_OTHERS:
            f, r = show(c)
            if kind == "abs":
                r = "-"
            row += [f, r]
        rows.append(row)
    # Idle capacity: ours holds 15,000 as the agent path did, ours2 at least 19,000.
    for label, c, want in (("idle conns held: ours 15,000", "ours", 15000),
                           ("idle conns held: ours2 >= 19,000", "ours2", 19000)):
        tried = num(res.get(c, {}).get("idle_target"))
        held = num(res.get(c, {}).get("idle_held"))
        if held is None or tried is None or tried < want:
            status = "not measured" if held is None else "NOT TESTED AT SCALE"
        else:
            status = "MET" if held >= want else "MISSED"
        base_txt = res.get("sshL", {}).get("idle_held", "-")
        row = [label, base_txt, res.get("ours", {}).get("idle_held", "-"), "-", status]
        for o in ISSUE10_OTHERS:
            row += [res.get(o, {}).get("idle_held", "-"), "-"]
        rows.append(row)
    head = ["target", "ssh -L", "ours", "ours/ssh -L", "status"]
    for c in ISSUE10_OTHERS:
        head += [c, "%s/ssh -L" % c]
    return head, rows


def main():
    res, machine, cmds = load(sys.argv[1])
    head, rows = table(res, CONTENDERS, METRICS, RATIOS)
    lhead, lrows = table(res, LONG, LONG_METRICS, LONG_RATIOS)
    t10_head, t10_rows = targets_issue10(res)
    relay = res.get(RELAY[0], {}).get("up1")
    if rows:
        print(text_table(head, rows))
        print()
    if lrows:
        print("long link (ssh through benchtool delay, 50 ms round trip):")
        print(text_table(lhead, lrows))
        print()
    if relay is not None:
        print("the relay alone, both directions at once: %s Mbit/s" % relay)
        print()
    print("targets, issue 10 (ssh path vs ssh -L; 50 ms rows: the -50 contenders):")
    print(text_table(t10_head, t10_rows))
    print()
    tg = targets_issue3(res)
    for name, status, detail in tg:
        print("target (issue 3): %-46s %-12s %s" % (name, status, detail))
    md = ["# Benchmark report (generated by bench/run.sh; do not edit by hand)", ""]
    md += ["## Machine and run", ""]
    for k in ("date", "mode", "cores", "cpu", "mem_gb", "kernel", "nofile", "ssh", "python",
              "load_start", "load_end", "seconds", "params"):
        if k in machine:
            md.append("* %s: %s" % (k, machine[k]))
    md += ["", "## Targets (issue 10: the ssh-channel path against ssh -L)", "",
           "`ours` is sshuttled with its defaults (TCP in ssh's own channels, one ssh "
           "connection); `ours2` adds `--ssh-connections 2`, `oursagent` is `--tcp-path agent` "
           "(shown for comparison; the targets are ours'). The 50 ms rows compare the -50 "
           "contenders (ssh through the delaying relay). CPU per GB is sshuttled's own "
           "utime+stime during the single-stream transfers (not its ssh): on the ssh path the "
           "bytes do not pass through it; the ssh -L column there shows the ssh client's.", "",
           md_table(t10_head, t10_rows), ""]
    md += ["## Targets (issue 3: ours against sshuttle 1.1)", "",
           "| target | status | measured |", "|---|---|---|"]
    for name, status, detail in tg:
        md.append("| %s | **%s** | %s |" % (name, status, detail))
    md.append("")
    if rows:
        md += ["## Figures", "",
               "Ratios are left/right of the raw figures (for RTT, RSS and CPU lower is better, so "
               "a ratio below 1 favours the left). CPU s/GB: utime+stime from /proc during the "
               "single-stream transfer divided by the bytes moved; *tunnel process* is sshuttled, "
               "sshuttle's client, or the ssh client; *+ its ssh* adds its child processes (the "
               "ssh connections); *server ns* is every process in the server namespace (sshd, the "
               "agent or server).", "", md_table(head, rows), ""]
    if lrows or relay is not None:
        md += ["## Long link (50 ms round trip)", "",
               "The same tunnels with ssh's `ProxyCommand` set to `benchtool delay 25 %h %p`: "
               "a relay that holds each chunk 25 ms in each direction between ssh and the "
               "server's sshd (the legs inside the client and target namespaces are not "
               "delayed). iperf3 single streams and a short 64 B round-trip series. On this "
               "link a window bounds a single stream at about window / 50 ms: ssh's channel "
               "window (2 MiB in OpenSSH: ~335 Mbit/s) for every ssh-based contender, and "
               "sshuttle 1.1's latency control (32 KiB in flight by default: ~5 Mbit/s).", ""]
        if lrows:
            md += [md_table(lhead, lrows), ""]
        if relay is not None:
            md += ["The relay alone (a stream through both of its directions at once, via an "
                   "echo server on loopback): **%s Mbit/s**." % relay, ""]
    md += ["## Commands", "",
           "`$CFG` is the lab's ssh_config; the lab is tests/lab/lab.sh. Workloads: iperf3 "
           "(`-t T`, `-P 1|8`, `-R` for down) to the target's iperf3; bench/benchtool "
           "(`rtt`, `connrate`, `idle`) to `benchtool serve` in the target.", ""]
    for c, name in CONTENDERS + [RELAY] + LONG:
        if c in cmds:
            md.append("* %s (`%s`): %s" % (name, c, cmds[c]))
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
