// SPDX-License-Identifier: GPL-2.0

#include <linux/seq_file_net.h>

struct net *rust_helper_seq_file_single_net(struct seq_file *seq)
{
	return seq_file_single_net(seq);
}

struct net *rust_helper_seq_file_net(struct seq_file *seq)
{
	return seq_file_net(seq);
}
