/work/main/schedulers/ip_vs_rr.o
