/*
 * tg.test=blk: a minimal virtio-blk driver (virtio 1.2 §3.1.1, §4.2, §5.2).
 * Finds the first virtio-mmio slot holding a block device, negotiates
 * VERSION_1 (+ FLUSH, RO when offered), sets up one 8-entry split queue in
 * its own .bss, then writes a pattern to BLK_SECTOR.., flushes, reads it
 * back, compares, and asks for the device ID. Completions are found by
 * polling the used ring (interrupts stay off), each bounded by the TSC.
 *
 * Records (guest/README.md protocol):
 *   TG blk status=ok|no-device|no-version-1|features-refused|no-queue base slot
 *          device_features driver_features capacity ro flush
 *   TG blk-req op=write|flush|read|get-id sector sectors status used_len
 *          (read adds crc32 match; get-id adds id; status is a number or "timeout")
 *
 * The pattern byte i of the buffer is blk_pattern(i) below; the host test
 * computes the same bytes and looks for them in the image file.
 */
#include "tg.h"

/* Where virtio-mmio slots sit (src/arch/x86_64/layout.ts: MMIO_START, 4 KiB each). */
#define VIRTIO_MMIO_START	0xd0000000UL
#define VIRTIO_MMIO_SLOT_SIZE	0x1000UL
#define VIRTIO_MMIO_SLOTS	32

/* virtio-mmio registers (virtio 1.2 §4.2.2). */
#define VM_MAGIC		0x000
#define VM_VERSION		0x004
#define VM_DEVICE_ID		0x008
#define VM_DEVICE_FEATURES	0x010
#define VM_DEVICE_FEATURES_SEL	0x014
#define VM_DRIVER_FEATURES	0x020
#define VM_DRIVER_FEATURES_SEL	0x024
#define VM_QUEUE_SEL		0x030
#define VM_QUEUE_NUM_MAX	0x034
#define VM_QUEUE_NUM		0x038
#define VM_QUEUE_READY		0x044
#define VM_QUEUE_NOTIFY		0x050
#define VM_STATUS		0x070
#define VM_QUEUE_DESC_LOW	0x080
#define VM_QUEUE_DESC_HIGH	0x084
#define VM_QUEUE_DRIVER_LOW	0x090
#define VM_QUEUE_DRIVER_HIGH	0x094
#define VM_QUEUE_DEVICE_LOW	0x0a0
#define VM_QUEUE_DEVICE_HIGH	0x0a4
#define VM_CONFIG		0x100

#define VIRTIO_MMIO_MAGIC	0x74726976	/* "virt" */
#define VIRTIO_ID_BLOCK		2

/* Device status bits (§2.1). */
#define S_ACKNOWLEDGE		1
#define S_DRIVER		2
#define S_DRIVER_OK		4
#define S_FEATURES_OK		8

/* Feature bits: low window (§5.2.3) and high window bit 0 = VIRTIO_F_VERSION_1 (bit 32, §6). */
#define VIRTIO_BLK_F_RO		(1u << 5)
#define VIRTIO_BLK_F_FLUSH	(1u << 9)
#define VIRTIO_F_VERSION_1_HI	(1u << 0)

/* Request types and the header (§5.2.6). */
#define VIRTIO_BLK_T_IN		0
#define VIRTIO_BLK_T_OUT	1
#define VIRTIO_BLK_T_FLUSH	4
#define VIRTIO_BLK_T_GET_ID	8
#define VIRTIO_BLK_ID_BYTES	20
#define SECTOR_SIZE		512

/* Split virtqueue descriptor flags (§2.7.5). */
#define VIRTQ_DESC_F_NEXT	1
#define VIRTQ_DESC_F_WRITE	2

#define QUEUE_SIZE		8
/* Test area: 8 sectors from sector 3, sent as 3 + 5 sectors to exercise gathering. */
#define BLK_SECTOR		3
#define BLK_SECTORS		8
#define BLK_FIRST_PART		3
/* How long one request may take (TSC ticks), with an iteration cap in case the TSC stands still. */
#define REQUEST_WAIT_TSC	10000000000UL
#define REQUEST_WAIT_SPINS	50000000UL

struct virtq_desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

struct blk_req_header {
	u32 type;
	u32 reserved;
	u64 sector;
};

/* Queue parts, aligned as §2.7 demands (16, 2, 4). */
static struct virtq_desc desc[QUEUE_SIZE] __attribute__((aligned(16)));
static volatile struct {
	u16 flags;
	u16 idx;
	u16 ring[QUEUE_SIZE];
	u16 used_event;
} avail __attribute__((aligned(2)));
static volatile struct {
	u16 flags;
	u16 idx;
	struct {
		u32 id;
		u32 len;
	} ring[QUEUE_SIZE];
	u16 avail_event;
} used __attribute__((aligned(4)));

static struct blk_req_header header;
static volatile u8 status_byte;
static u8 wbuf[BLK_SECTORS * SECTOR_SIZE];
static u8 rbuf[BLK_SECTORS * SECTOR_SIZE];
static u8 idbuf[VIRTIO_BLK_ID_BYTES];
static u16 last_used;
static u64 base;

static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
static u32 rd(u32 off) { return mmio_read32(base + off); }
static void wr(u32 off, u32 v) { mmio_write32(base + off, v); }

static u8 blk_pattern(u32 i)
{
	return (u8)((i * 7u) ^ (i >> 9) ^ 0x5a);
}

static void set_desc(u32 i, const void *addr, u32 len, u16 flags)
{
	desc[i].addr = (u64)addr;
	desc[i].len = len;
	desc[i].flags = flags;
	desc[i].next = (u16)(i + 1);
}

/* Publishes the chain at descriptor 0, notifies, waits for its used element; returns used len or -1 on timeout. */
static i64 submit(void)
{
	avail.ring[avail.idx % QUEUE_SIZE] = 0;
	barrier();	/* descriptors and ring entry before idx (§2.7.13.3.1; x86 keeps stores in order) */
	avail.idx = avail.idx + 1;
	barrier();
	wr(VM_QUEUE_NOTIFY, 0);
	u64 start = rdtsc();
	for (u64 i = 0; i < REQUEST_WAIT_SPINS && rdtsc() - start < REQUEST_WAIT_TSC; i++) {
		if (used.idx != last_used) {
			barrier();
			u32 len = used.ring[last_used % QUEUE_SIZE].len;
			last_used++;
			return len;
		}
		cpu_relax();
	}
	return -1;
}

static void report_req(const char *op, u32 sector, u32 sectors, i64 len)
{
	tg_begin("blk-req");
	tg_word("op", op);
	tg_dec("sector", sector);
	tg_dec("sectors", sectors);
	if (len < 0)
		tg_word("status", "timeout");
	else
		tg_dec("status", status_byte);
	tg_dec("used_len", len < 0 ? 0 : (u64)len);
}

static void header_for(u32 type, u64 sector)
{
	header.type = type;
	header.reserved = 0;
	header.sector = sector;
	status_byte = 0xff;
}

static bool find_device(u32 *slot)
{
	for (u32 n = 0; n < VIRTIO_MMIO_SLOTS; n++) {
		base = VIRTIO_MMIO_START + n * VIRTIO_MMIO_SLOT_SIZE;
		if (rd(VM_MAGIC) == VIRTIO_MMIO_MAGIC && rd(VM_VERSION) == 2 && rd(VM_DEVICE_ID) == VIRTIO_ID_BLOCK) {
			*slot = n;
			return true;
		}
	}
	return false;
}

static void blk_status(const char *status, u32 slot, u32 dev_lo, u32 drv_lo, u64 capacity)
{
	tg_begin("blk");
	tg_word("status", status);
	tg_hex("base", base);
	tg_dec("slot", slot);
	tg_hex("device_features", dev_lo);
	tg_hex("driver_features", drv_lo);
	tg_dec("capacity", capacity);
	tg_dec("ro", !!(dev_lo & VIRTIO_BLK_F_RO));
	tg_dec("flush", !!(drv_lo & VIRTIO_BLK_F_FLUSH));
	tg_end();
}

void blk_test(void)
{
	u32 slot = 0;
	if (!find_device(&slot)) {
		base = 0;
		blk_status("no-device", 0, 0, 0, 0);
		return;
	}
	/* §3.1.1: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queues, DRIVER_OK. */
	wr(VM_STATUS, 0);
	wr(VM_STATUS, S_ACKNOWLEDGE);
	wr(VM_STATUS, S_ACKNOWLEDGE | S_DRIVER);
	wr(VM_DEVICE_FEATURES_SEL, 0);
	u32 dev_lo = rd(VM_DEVICE_FEATURES);
	wr(VM_DEVICE_FEATURES_SEL, 1);
	u32 dev_hi = rd(VM_DEVICE_FEATURES);
	if (!(dev_hi & VIRTIO_F_VERSION_1_HI)) {
		blk_status("no-version-1", slot, dev_lo, 0, 0);
		return;
	}
	u32 drv_lo = dev_lo & (VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_RO);
	wr(VM_DRIVER_FEATURES_SEL, 0);
	wr(VM_DRIVER_FEATURES, drv_lo);
	wr(VM_DRIVER_FEATURES_SEL, 1);
	wr(VM_DRIVER_FEATURES, VIRTIO_F_VERSION_1_HI);
	wr(VM_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	if (!(rd(VM_STATUS) & S_FEATURES_OK)) {
		blk_status("features-refused", slot, dev_lo, drv_lo, 0);
		return;
	}
	wr(VM_QUEUE_SEL, 0);
	if (rd(VM_QUEUE_NUM_MAX) < QUEUE_SIZE) {
		blk_status("no-queue", slot, dev_lo, drv_lo, 0);
		return;
	}
	wr(VM_QUEUE_NUM, QUEUE_SIZE);
	wr(VM_QUEUE_DESC_LOW, (u32)(u64)desc);
	wr(VM_QUEUE_DESC_HIGH, (u32)((u64)desc >> 32));
	wr(VM_QUEUE_DRIVER_LOW, (u32)(u64)&avail);
	wr(VM_QUEUE_DRIVER_HIGH, (u32)((u64)&avail >> 32));
	wr(VM_QUEUE_DEVICE_LOW, (u32)(u64)&used);
	wr(VM_QUEUE_DEVICE_HIGH, (u32)((u64)&used >> 32));
	wr(VM_QUEUE_READY, 1);
	wr(VM_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	u64 capacity = rd(VM_CONFIG) | (u64)rd(VM_CONFIG + 4) << 32;
	blk_status("ok", slot, dev_lo, drv_lo, capacity);
	if (capacity < BLK_SECTOR + BLK_SECTORS)
		return;

	/* OUT: header, data as two descriptors, status. */
	for (u32 i = 0; i < sizeof(wbuf); i++)
		wbuf[i] = blk_pattern(i);
	header_for(VIRTIO_BLK_T_OUT, BLK_SECTOR);
	set_desc(0, &header, sizeof(header), VIRTQ_DESC_F_NEXT);
	set_desc(1, wbuf, BLK_FIRST_PART * SECTOR_SIZE, VIRTQ_DESC_F_NEXT);
	set_desc(2, wbuf + BLK_FIRST_PART * SECTOR_SIZE, (BLK_SECTORS - BLK_FIRST_PART) * SECTOR_SIZE, VIRTQ_DESC_F_NEXT);
	set_desc(3, (const void *)&status_byte, 1, VIRTQ_DESC_F_WRITE);
	i64 len = submit();
	report_req("write", BLK_SECTOR, BLK_SECTORS, len);
	tg_end();

	if (drv_lo & VIRTIO_BLK_F_FLUSH) {
		header_for(VIRTIO_BLK_T_FLUSH, 0);
		set_desc(0, &header, sizeof(header), VIRTQ_DESC_F_NEXT);
		set_desc(1, (const void *)&status_byte, 1, VIRTQ_DESC_F_WRITE);
		len = submit();
		report_req("flush", 0, 0, len);
		tg_end();
	}

	/* IN: header, one writable data descriptor, status. */
	memset(rbuf, 0, sizeof(rbuf));
	header_for(VIRTIO_BLK_T_IN, BLK_SECTOR);
	set_desc(0, &header, sizeof(header), VIRTQ_DESC_F_NEXT);
	set_desc(1, rbuf, sizeof(rbuf), VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT);
	set_desc(2, (const void *)&status_byte, 1, VIRTQ_DESC_F_WRITE);
	len = submit();
	report_req("read", BLK_SECTOR, BLK_SECTORS, len);
	tg_hex("crc32", crc32(rbuf, sizeof(rbuf)));
	tg_dec("match", !memcmp(rbuf, wbuf, sizeof(rbuf)));
	tg_end();

	memset(idbuf, 0, sizeof(idbuf));
	header_for(VIRTIO_BLK_T_GET_ID, 0);
	set_desc(0, &header, sizeof(header), VIRTQ_DESC_F_NEXT);
	set_desc(1, idbuf, sizeof(idbuf), VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT);
	set_desc(2, (const void *)&status_byte, 1, VIRTQ_DESC_F_WRITE);
	len = submit();
	report_req("get-id", 0, 0, len);
	size_t n = 0;
	while (n < sizeof(idbuf) && idbuf[n])
		n++;
	tg_str("id", idbuf, n);
	tg_end();
}
