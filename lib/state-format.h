/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one definition of the state format: header constants, every payload section
 * (name, GVariant type, the minor that added it, the lib/ file that writes and reads
 * it, the size of its fixed records, the required feature that comes with it), the
 * required features and the fd registry keys the library itself uses.
 *
 * docs/state-format.md documents all of this; tests/test-state-format.c compares its
 * tables with the ones below (both ways) and checks a real payload against them, so
 * a change here without the document (or the other way round) fails the tests.
 *
 * Adding a section: one row in VFIOCPR_STATE_SECTIONS with since = the new minor
 * (bump VFIOCPR_STATE_FORMAT_MINOR in include/vfiocpr.h), the same row in the
 * document's table, and a golden blob of the new minor (tests/make-golden).
 * Rows are never removed or changed: an older state must keep reading.
 * Not installed.
 */
#ifndef VFIOCPR_STATE_FORMAT_H
#define VFIOCPR_STATE_FORMAT_H

#include <glib.h>

#include "vfiocpr.h" /* VFIOCPR_STATE_FORMAT_MAJOR, _MINOR, VFIOCPR_STATE_ENV, fd kinds */

/* ---------------------------------------------------------------- header */

#define VFIOCPR_STATE_MAGIC "VFIOCPR\0"
#define VFIOCPR_STATE_HEADER_SIZE 32
#define VFIOCPR_STATE_SEALS_REQUIRED 0xf /* F_SEAL_SEAL|SHRINK|GROW|WRITE */
/* Anything larger is refused before allocating: no real state comes near it. */
#define VFIOCPR_STATE_MAX_PAYLOAD (256u << 20)

/* ---------------------------------------------------------------- records
 * Fixed-size records, laid out exactly as the GVariant struct (no padding inside,
 * little endian): a section of them is one g_variant_new_fixed_array(). Each
 * owner's C struct asserts its size against these. */

#define VFIOCPR_RECORD_FD "(uutiuttt)" /* lib/fdreg.c wire_fd */
#define VFIOCPR_RECORD_FD_SIZE 48
#define VFIOCPR_RECORD_DMA "(uuttttt)" /* lib/vfio.c wire_dma, both backends */
#define VFIOCPR_RECORD_DMA_SIZE 48
#define VFIOCPR_RECORD_IRQ "(uuuutuu)" /* lib/irq.c wire_irq */
#define VFIOCPR_RECORD_IRQ_SIZE 32

/* ---------------------------------------------------------------- features
 * X(ID, name, since minor). A payload lists in "required-features" what a reader
 * must implement to restore it; a reader refuses a name it does not know. */
#define VFIOCPR_STATE_FEATURES(X)                                                          \
    X(VFIO_TYPE1, "vfio-type1", 1)                                                          \
    X(IOMMUFD, "iommufd", 3)                                                                \
    X(FD_INDEX, "fd-index", 4)                                                              \
    X(DMA_TABLE, "dma-table", 6)

/* The names as literals, for constant initializers (backend ops). */
#define VFIOCPR_FEATURE_VFIO_TYPE1 "vfio-type1"
#define VFIOCPR_FEATURE_IOMMUFD "iommufd"
/* a transfer state: fd records hold indexes into the fds that travel with it */
#define VFIOCPR_FEATURE_FD_INDEX "fd-index"
/* the DMA records are in a sealed table memfd per container, not in the payload */
#define VFIOCPR_FEATURE_DMA_TABLE "dma-table"

typedef enum {
#define VFIOCPR_X_(id, name, since) VFIOCPR_FEAT_##id,
    VFIOCPR_STATE_FEATURES(VFIOCPR_X_)
#undef VFIOCPR_X_
    VFIOCPR_FEAT_COUNT
} vfiocpr_feature_id;

typedef struct {
    const char *name;
    guint since; /* minor of VFIOCPR_STATE_FORMAT_MAJOR */
} vfiocpr_feature_def;

extern const vfiocpr_feature_def vfiocpr_state_features[VFIOCPR_FEAT_COUNT];

/* ---------------------------------------------------------------- sections
 * X(ID, name, GVariant type, since minor, owner, record size, feature)
 *   owner: the lib/ file (without .c) that writes and reads the section;
 *   record: the size of one element for arrays of fixed records, else 0;
 *   feature: the required feature a payload lists whenever it holds the section
 *   ("" when the section is optional: a reader that ignores it still restores).
 * Order: as documented. */
#define VFIOCPR_STATE_SECTIONS(X)                                                          \
    X(WRITER, "writer", "s", 0, "cpr", 0, "")                                               \
    X(WRITER_PID, "writer-pid", "u", 0, "cpr", 0, "")                                       \
    X(CREATED_USEC, "created-usec", "x", 0, "cpr", 0, "")                                   \
    X(REQUIRED_FEATURES, "required-features", "as", 0, "cpr", 0, "")                        \
    X(FD_NAMES, "fd-names", "as", 0, "fdreg", 0, "")                                        \
    X(FDS, "fds", "a" VFIOCPR_RECORD_FD, 0, "fdreg", VFIOCPR_RECORD_FD_SIZE, "")            \
    X(VFIO_CONTAINERS, "vfio-containers", "as", 1, "type1", 0, VFIOCPR_FEATURE_VFIO_TYPE1)  \
    X(VFIO_GROUPS, "vfio-groups", "a(su)", 1, "type1", 0, VFIOCPR_FEATURE_VFIO_TYPE1)       \
    X(VFIO_DEVICES, "vfio-devices", "a(ssu)", 1, "type1", 0, VFIOCPR_FEATURE_VFIO_TYPE1)    \
    X(VFIO_DMA, "vfio-dma", "a" VFIOCPR_RECORD_DMA, 1, "vfio", VFIOCPR_RECORD_DMA_SIZE,     \
      VFIOCPR_FEATURE_VFIO_TYPE1)                                                           \
    X(VFIO_IRQ_DEVICES, "vfio-irq-devices", "as", 2, "irq", 0, "")                          \
    X(VFIO_INTX, "vfio-intx", "a(sbu)", 2, "irq", 0, "")                                    \
    X(VFIO_IRQS, "vfio-irqs", "a" VFIOCPR_RECORD_IRQ, 2, "irq", VFIOCPR_RECORD_IRQ_SIZE, "") \
    X(IOMMUFD_CONTAINERS, "iommufd-containers", "a(su)", 3, "iommufd", 0,                   \
      VFIOCPR_FEATURE_IOMMUFD)                                                              \
    X(IOMMUFD_DEVICES, "iommufd-devices", "a(ssuu)", 3, "iommufd", 0,                       \
      VFIOCPR_FEATURE_IOMMUFD)                                                              \
    X(IOMMUFD_DMA, "iommufd-dma", "a" VFIOCPR_RECORD_DMA, 3, "vfio", VFIOCPR_RECORD_DMA_SIZE, \
      VFIOCPR_FEATURE_IOMMUFD)                                                              \
    X(VFIO_DEVICE_IDENTITY, "vfio-device-identity", "a(suuuuuuat)", 5, "device", 0, "")     \
    X(DMA_TABLES, "dma-tables", "a(suu)", 6, "vfio", 0, VFIOCPR_FEATURE_DMA_TABLE)

typedef enum {
#define VFIOCPR_X_(id, name, type, since, owner, record, feature) VFIOCPR_SEC_##id,
    VFIOCPR_STATE_SECTIONS(VFIOCPR_X_)
#undef VFIOCPR_X_
    VFIOCPR_SEC_COUNT
} vfiocpr_section_id;

typedef struct {
    const char *name;
    const char *type;
    guint since; /* minor of VFIOCPR_STATE_FORMAT_MAJOR */
    const char *owner;
    gsize record;
    const char *feature;
} vfiocpr_section_def;

extern const vfiocpr_section_def vfiocpr_state_sections[VFIOCPR_SEC_COUNT];

/* The name and type of a section, by ID without the prefix: VFIOCPR_SECTION(FDS). */
#define VFIOCPR_SECTION(id) (vfiocpr_state_sections[VFIOCPR_SEC_##id].name)
#define VFIOCPR_SECTION_TYPE(id) G_VARIANT_TYPE(vfiocpr_state_sections[VFIOCPR_SEC_##id].type)

/* The section's value if present with its type, else NULL (new reference). */
GVariant *vfiocpr_section_lookup(GVariant *payload, vfiocpr_section_id id);
/* The section's value whatever its type, or NULL (new reference). */
GVariant *vfiocpr_section_lookup_any(GVariant *payload, vfiocpr_section_id id);
/* Whether the payload holds the section, whatever its type. */
bool vfiocpr_section_present(GVariant *payload, vfiocpr_section_id id);
/* While a restore reads one payload, its sections by ID from a single walk of the
 * dictionary (this thread only): each look-up above is then one array access instead
 * of a scan of every entry (g_variant_lookup_value() builds and drops a GVariant per
 * entry it passes). The first entry of a name wins, as with g_variant_lookup_value().
 * Look-ups of any other payload, and all of them after _end(), scan as before. */
void vfiocpr_section_index_begin(GVariant *payload);
void vfiocpr_section_index_end(void);
/* vfiocpr_state_decode() with the index up for the decoded payload when it returns
 * 0 (built by the normal-form check's walk, no second one); the caller ends it. */
int vfiocpr_state_decode_indexed(GBytes *blob, GVariant **payload_out, guint16 *major_out,
                                 guint16 *minor_out, GError **error);
/* Adds the section (value is consumed if floating); its type must be the table's. */
void vfiocpr_section_insert(GVariantDict *payload, vfiocpr_section_id id, GVariant *value);
/* The section of that name, or NULL. */
const vfiocpr_section_def *vfiocpr_section_find(const char *name);

/* ---------------------------------------------------------------- registry keys
 * The fd registry entries the library makes itself: (name, id). Any other name is
 * the VMM's own. X(ID, pattern as documented, id meaning, owner). */
#define VFIOCPR_STATE_KEYS(X)                                                              \
    X(VFIO_GROUP, "vfio-group", "group number", "type1")                                    \
    X(TYPE1_CONTAINER, "vfio-container:<container>", "0", "type1")                          \
    X(IOMMUFD_CONTAINER, "iommufd:<container>", "0", "iommufd")                             \
    X(DEVICE, "vfio-device:<device>", "0", "device")                                        \
    X(IRQ, "irq:<device>:<index>", "vector", "irq")                                         \
    X(IRQ_UNMASK, "irq-unmask:<device>", "0", "irq")                                        \
    X(DMA_TABLE, "vfio-dma-table:<container>", "0", "vfio")

typedef struct {
    const char *pattern; /* fixed text, then <placeholders> */
    const char *id;      /* what the id holds; "0": always 0 */
    const char *owner;
} vfiocpr_key_def;

typedef enum {
#define VFIOCPR_X_(id, pattern, idm, owner) VFIOCPR_KEY_##id,
    VFIOCPR_STATE_KEYS(VFIOCPR_X_)
#undef VFIOCPR_X_
    VFIOCPR_KEY_COUNT
} vfiocpr_key_id;

extern const vfiocpr_key_def vfiocpr_state_keys[VFIOCPR_KEY_COUNT];

/* The builders: the only places these names are spelled. */
#define VFIOCPR_KEY_GROUP "vfio-group" /* id: the group number */
#define VFIOCPR_KEY_TYPE1_CONTAINER_PREFIX "vfio-container:"
#define VFIOCPR_KEY_IOMMUFD_CONTAINER_PREFIX "iommufd:"

static inline char *vfiocpr_key_container(const char *prefix, const char *container)
{
    return g_strconcat(prefix, container, NULL);
}

/* a container's DMA table memfd (format 1.6), registered for a handover */
static inline char *vfiocpr_key_dma_table(const char *container)
{
    return g_strconcat("vfio-dma-table:", container, NULL);
}

static inline char *vfiocpr_key_device(const char *device)
{
    return g_strconcat("vfio-device:", device, NULL);
}

/* id: the vector; index: VFIOCPR_IRQ_* */
static inline char *vfiocpr_key_irq(const char *device, guint index)
{
    return g_strdup_printf("irq:%s:%u", device, index);
}

static inline char *vfiocpr_key_irq_unmask(const char *device)
{
    return g_strconcat("irq-unmask:", device, NULL);
}

#endif
