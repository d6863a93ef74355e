// SPDX-License-Identifier: GPL-2.0
/*
 * Bitmap exchange, resync and online verify between two bsr nodes.
 * (Being written: the packets are reserved in bsr_proto.h; until then any
 * of them is a protocol error.)
 */
#include "bsr_transport.h"

const struct bsr_pkt_rule bsr_rs_rules[P_RS_LAST - P_RS_FIRST + 1];

int bsr_rs_start(struct bsr_net *n)
{
	return 0;
}

void bsr_rs_stop(struct bsr_net *n)
{
}

int bsr_rs_recv(struct bsr_net *n, struct bsr_pkt_hdr *h)
{
	return bsr_proto_err(n, &n->data, "unexpected command while connected", h);
}

int bsr_rs_got_ack(struct bsr_net *n, struct bsr_pkt_hdr *h)
{
	return bsr_proto_err(n, &n->meta, "unexpected command while connected", h);
}
