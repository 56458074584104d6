/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VFIO uAPI the build host's <linux/vfio.h> may predate (values and layouts from
 * include/uapi/linux/vfio.h). One copy, for the library, its fake kernel and the
 * raw guest programs. */
#ifndef VFIOCPR_VFIO_COMPAT_H
#define VFIOCPR_VFIO_COMPAT_H

#include <linux/vfio.h>

/* type1 vaddr updates: Linux 5.12 */
#ifndef VFIO_UNMAP_ALL
#define VFIO_UNMAP_ALL 9
#endif
#ifndef VFIO_UPDATE_VADDR
#define VFIO_UPDATE_VADDR 10
#endif
#ifndef VFIO_DMA_UNMAP_FLAG_ALL
#define VFIO_DMA_UNMAP_FLAG_ALL (1 << 1)
#endif
#ifndef VFIO_DMA_UNMAP_FLAG_VADDR
#define VFIO_DMA_UNMAP_FLAG_VADDR (1 << 2)
#endif
#ifndef VFIO_DMA_MAP_FLAG_VADDR
#define VFIO_DMA_MAP_FLAG_VADDR (1 << 2)
#endif

/* migration pre-copy: Linux 6.2. The states extend enum vfio_device_mig_state, so
 * the flag's macro tells whether they are there. */
#ifndef VFIO_MIGRATION_PRE_COPY
#define VFIO_MIGRATION_PRE_COPY (1 << 2)
#define VFIO_DEVICE_STATE_PRE_COPY 6
#define VFIO_DEVICE_STATE_PRE_COPY_P2P 7
#endif
#ifndef VFIO_DEVICE_FEATURE_MIG_DATA_SIZE
#define VFIO_DEVICE_FEATURE_MIG_DATA_SIZE 9
struct vfio_device_feature_mig_data_size {
    __aligned_u64 stop_copy_length;
};
#endif
#ifndef VFIO_MIG_GET_PRECOPY_INFO
struct vfio_precopy_info {
    __u32 argsz;
    __u32 flags;
    __aligned_u64 initial_bytes;
    __aligned_u64 dirty_bytes;
};
#define VFIO_MIG_GET_PRECOPY_INFO _IO(VFIO_TYPE, VFIO_BASE + 21)
#endif

/* vfio cdev + iommufd: Linux 6.6 (cdev), MAP_FILE and CHANGE_PROCESS 6.14. A
 * Debian 12 host has no <linux/iommufd.h> at all. Only what the library issues. */
#ifndef VFIO_DEVICE_BIND_IOMMUFD
struct vfio_device_bind_iommufd {
    __u32 argsz;
    __u32 flags;
    __s32 iommufd;
    __u32 out_devid;
};
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
struct vfio_device_attach_iommufd_pt {
    __u32 argsz;
    __u32 flags;
    __u32 pt_id;
};
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)
struct vfio_device_detach_iommufd_pt {
    __u32 argsz;
    __u32 flags;
};
#define VFIO_DEVICE_DETACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 20)
#endif

#if defined(__has_include)
#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#endif
#endif
#ifndef IOMMUFD_TYPE
#define IOMMUFD_TYPE (';')
struct iommu_destroy {
    __u32 size;
    __u32 id;
};
#define IOMMU_DESTROY _IO(IOMMUFD_TYPE, 0x80)
struct iommu_ioas_alloc {
    __u32 size;
    __u32 flags;
    __u32 out_ioas_id;
};
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, 0x81)
enum iommufd_ioas_map_flags {
    IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0,
    IOMMU_IOAS_MAP_WRITEABLE = 1 << 1,
    IOMMU_IOAS_MAP_READABLE = 1 << 2,
};
struct iommu_ioas_map {
    __u32 size;
    __u32 flags;
    __u32 ioas_id;
    __u32 __reserved;
    __aligned_u64 user_va;
    __aligned_u64 length;
    __aligned_u64 iova;
};
#define IOMMU_IOAS_MAP _IO(IOMMUFD_TYPE, 0x85)
struct iommu_ioas_unmap {
    __u32 size;
    __u32 ioas_id;
    __aligned_u64 iova;
    __aligned_u64 length;
};
#define IOMMU_IOAS_UNMAP _IO(IOMMUFD_TYPE, 0x86)
#endif
#ifndef IOMMU_IOAS_MAP_FILE
struct iommu_ioas_map_file {
    __u32 size;
    __u32 flags;
    __u32 ioas_id;
    __s32 fd;
    __aligned_u64 start;
    __aligned_u64 length;
    __aligned_u64 iova;
};
#define IOMMU_IOAS_MAP_FILE _IO(IOMMUFD_TYPE, 0x8f)
#endif
#ifndef IOMMU_IOAS_CHANGE_PROCESS
struct iommu_ioas_change_process {
    __u32 size;
    __u32 __reserved;
};
#define IOMMU_IOAS_CHANGE_PROCESS _IO(IOMMUFD_TYPE, 0x92)
#endif

#endif
