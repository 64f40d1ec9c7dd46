savedcmd_/work/main/ipvs/ip_vs_test.mod := printf '%s\n'   ip_vs_test.o | awk '!x[$$0]++ { print("/work/main/ipvs/"$$0) }' > /work/main/ipvs/ip_vs_test.mod
