/work/main/ipvs/ip_vs_core.o
/work/main/ipvs/exports.o
