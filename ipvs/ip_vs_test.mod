/work/main/ipvs/ip_vs_test.o
