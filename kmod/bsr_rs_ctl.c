// SPDX-License-Identifier: GPL-2.0
/*
 * How fast the SyncSource issues resync reads, decided once per 100 ms
 * tick (peer-device options, rates in KiB/s):
 *
 *  - c-plan-ahead 0: a fixed resync-rate;
 *  - c-plan-ahead > 0: a controller that plans c-plan-ahead tenths of a
 *    second ahead.  It aims at an amount in flight (read or sent, not yet
 *    acked): c-fill-target sectors, or what the ack rate of the last
 *    second says c-delay-target tenths of a second are worth when that is
 *    more, so the resync grows until the link or the disks are full.  The
 *    correction towards that aim is spread over the planned ticks; a tick
 *    issues what is acked per tick (averaged over the last second: acks
 *    come in bursts) plus its share, at most c-max-rate.  It starts at a
 *    tenth of c-max-rate (at least c-fill-target) and finds the rate of
 *    the link from there.  While the application has not written for a
 *    second, there is nobody to leave bandwidth for: the resync issues at
 *    c-max-rate (bounded by 16 MiB in flight); the first application
 *    write hands the pace back to the controller, whose plan then brings
 *    the amount in flight down to its aim.
 *
 * While the application writes to the device (on this node), the resync
 * gets at most half of that and never less than c-min-rate, so
 * application writes keep bandwidth and the resync keeps moving.
 */
#include "bsr_rs_int.h"

#define TICKS_PER_SEC	10
#define RS_APP_IDLE	HZ	/* no application write for that long: idle */

static u64 kib_per_tick(u32 kib_per_sec)
{
	return (u64)kib_per_sec * 2 / TICKS_PER_SEC;	/* sectors */
}

static s64 plan(struct rs_vol *v, u32 steps, s64 correction)
{
	s64 per_step, now;
	u32 i;

	if (steps != v->fifo_steps) {
		memset(v->fifo, 0, sizeof(v->fifo));
		v->fifo_head = 0;
		v->fifo_total = 0;
		v->fifo_steps = steps;
	}
	per_step = div_s64(correction, steps);
	for (i = 0; i < steps; i++)
		v->fifo[i] += per_step;
	v->fifo_total += per_step * steps;
	now = (s32)v->fifo[v->fifo_head];
	v->fifo[v->fifo_head] = 0;
	v->fifo_head = (v->fifo_head + 1) % steps;
	v->fifo_total -= now;
	return now;
}

/* Sectors acked per tick, averaged over the last second. */
static u64 ack_rate(struct rs_vol *v, u64 sect_in)
{
	u32 now = min_t(u64, sect_in, U32_MAX);

	v->in_sum += now;
	v->in_sum -= v->in_hist[v->in_pos];
	v->in_hist[v->in_pos] = now;
	v->in_pos = (v->in_pos + 1) % RS_AVG_TICKS;
	if (v->in_n < RS_AVG_TICKS)
		v->in_n++;
	return div_u64(v->in_sum, v->in_n);
}

static u64 variable_rate(struct rs_vol *v, const struct bsr_peer_device_conf *pc,
			 u64 sect_in)
{
	u32 steps = clamp_t(u32, pc->c_plan_ahead, 1, RS_FIFO_MAX);
	u64 max = kib_per_tick(pc->c_max_rate);
	s64 rate = ack_rate(v, sect_in);
	s64 want = max_t(s64, pc->c_fill_target, rate * pc->c_delay_target);
	s64 in_flight = atomic_read(&v->in_flight);
	s64 req;

	want = min_t(s64, want, RS_MAX_IN_FLIGHT);
	req = rate + plan(v, steps, want - in_flight - v->fifo_total);
	if (!in_flight && !rate)	/* start, or after a pause */
		req = max_t(s64, req, max_t(u64, pc->c_fill_target, max / 10));
	return clamp_t(s64, req, 0, max);
}

/* Sectors the application wrote to @dev so far. */
static u64 app_sectors(struct bsr_device *dev)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += READ_ONCE(per_cpu_ptr(dev->stats.io, cpu)->write_sectors);
	return sum;
}

void rs_controller_reset(struct rs_vol *v)
{
	memset(v->fifo, 0, sizeof(v->fifo));
	v->fifo_head = 0;
	v->fifo_total = 0;
	memset(v->in_hist, 0, sizeof(v->in_hist));
	v->in_pos = 0;
	v->in_n = 0;
	v->in_sum = 0;
	v->last_acked = atomic64_read(&v->acked);
	v->last_app_sectors = app_sectors(v->dev);
	v->app_seen = jiffies - RS_APP_IDLE - 1;
}

u64 rs_controller(struct rs_vol *v)
{
	const struct bsr_peer_device_conf *pc = &v->pd->conf;
	u64 acked = atomic64_read(&v->acked);
	u64 app = app_sectors(v->dev);
	u64 sect_in = acked - v->last_acked;
	bool app_busy = app != v->last_app_sectors;
	u64 req;

	v->last_acked = acked;
	v->last_app_sectors = app;
	if (app_busy)
		v->app_seen = jiffies;
	if (!READ_ONCE(pc->c_plan_ahead)) {
		req = kib_per_tick(READ_ONCE(pc->resync_rate));
	} else {
		req = variable_rate(v, pc, sect_in);
		/* nobody to leave bandwidth for: as fast as c-max-rate */
		if (time_after(jiffies, v->app_seen + RS_APP_IDLE))
			req = kib_per_tick(READ_ONCE(pc->c_max_rate));
	}
	if (app_busy)
		req = max(req / 2, kib_per_tick(READ_ONCE(pc->c_min_rate)));
	return max_t(u64, req, 8);
}
