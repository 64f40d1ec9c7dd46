savedcmd_/work/main/ipvs/ip_vs.o := ld.lld -m elf_x86_64 -z noexecstack   -r -o /work/main/ipvs/ip_vs.o @/work/main/ipvs/ip_vs.mod  ; ./tools/objtool/objtool --hacks=jump_label --hacks=noinstr --ibt --static-call --uaccess  --link  --module /work/main/ipvs/ip_vs.o

/work/main/ipvs/ip_vs.o: $(wildcard ./tools/objtool/objtool)
