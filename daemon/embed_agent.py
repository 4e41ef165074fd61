#!/usr/bin/env python3
"""Turns daemon/remote/agent.py into a C++ source defining agent_source() (build step)."""
import sys

source, output = sys.argv[1], sys.argv[2]
data = open(source, "rb").read()
with open(output, "w", encoding="ascii") as out:
    out.write('// Generated from daemon/remote/agent.py by daemon/embed_agent.py. Do not edit.\n')
    out.write('#include "daemon/agent_source.hpp"\n\n')
    out.write("namespace sshuttle::daemon {\nnamespace {\nconstexpr char kAgent[] = {\n")
    for i in range(0, len(data), 16):
        out.write("    " + ", ".join(str(b) for b in data[i:i + 16]) + ",\n")
    out.write("};\n}  // namespace\n\n")
    out.write("std::string_view agent_source() noexcept { return {kAgent, sizeof kAgent}; }\n")
    out.write("}  // namespace sshuttle::daemon\n")
