savedcmd_/work/main/ipvs/ip_vs.mod := printf '%s\n'   ip_vs_core.o exports.o | awk '!x[$$0]++ { print("/work/main/ipvs/"$$0) }' > /work/main/ipvs/ip_vs.mod
