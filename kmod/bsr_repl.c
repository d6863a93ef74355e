// SPDX-License-Identifier: GPL-2.0
/*
 * Replication of application writes between two bsr nodes.
 * (Being written: the packets are reserved in bsr_proto.h; until then any
 * of them is a protocol error.)
 */
#include "bsr_transport.h"

void bsr_repl_dev_init(struct bsr_device *dev)
{
	spin_lock_init(&dev->range_lock);
	INIT_LIST_HEAD(&dev->ranges);
	init_waitqueue_head(&dev->range_wait);
	INIT_LIST_HEAD(&dev->repl_targets);
}

const struct bsr_pkt_rule bsr_repl_rules[P_REPL_LAST - P_DATA + 1];

int bsr_repl_start(struct bsr_net *n)
{
	return 0;
}

void bsr_repl_stop(struct bsr_net *n)
{
}

int bsr_repl_recv(struct bsr_net *n, struct bsr_pkt_hdr *h)
{
	return bsr_proto_err(n, &n->data, "unexpected command while connected", h);
}

int bsr_repl_got_ack(struct bsr_net *n, struct bsr_pkt_hdr *h)
{
	return bsr_proto_err(n, &n->meta, "unexpected command while connected", h);
}
