savedcmd_/work/main/schedulers/ip_vs_rr.mod := printf '%s\n'   ip_vs_rr.o | awk '!x[$$0]++ { print("/work/main/schedulers/"$$0) }' > /work/main/schedulers/ip_vs_rr.mod
