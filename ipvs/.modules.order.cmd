savedcmd_/work/main/ipvs/modules.order := {   echo /work/main/ipvs/ip_vs.o;   echo /work/main/ipvs/ip_vs_test.o; :; } > /work/main/ipvs/modules.order
