savedcmd_/work/main/schedulers/modules.order := {   echo /work/main/schedulers/ip_vs_rr.o; :; } > /work/main/schedulers/modules.order
