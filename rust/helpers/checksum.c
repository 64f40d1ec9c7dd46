// SPDX-License-Identifier: GPL-2.0

#include <net/checksum.h>

__sum16 rust_helper_csum_fold(__wsum csum)
{
	return csum_fold(csum);
}
