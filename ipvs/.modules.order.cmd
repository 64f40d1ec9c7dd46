savedcmd_/work/main/ipvs/modules.order := {   echo /work/main/ipvs/ip_vs.o; :; } > /work/main/ipvs/modules.order
