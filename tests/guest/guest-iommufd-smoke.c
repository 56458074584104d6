// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * guest-iommufd-smoke: raw iommufd + vfio cdev smoke test for the guest test bed.
 *
 * Plain libc and ioctls, no libvfiocpr: it proves on the real kernel (the one
 * build-kernel.sh makes: run-guest.sh --kernel iommufd) each fact the library's
 * iommufd backend relies on, as TAP:
 *   /dev/iommu; IOMMU_IOAS_ALLOC; the edu cdev, VFIO_DEVICE_BIND_IOMMUFD,
 *   VFIO_DEVICE_ATTACH_IOMMUFD_PT (the IOAS id in, an automatic HWPT id out); a
 *   cdev cannot be bound twice; IOMMU_IOAS_MAP_FILE of a memfd with CAP_IPC_LOCK
 *   dropped raises VmPin by the mapped size; edu DMA both ways; CHANGE_PROCESS is a
 *   no-op (0) in the process that owns the pins and EINVAL while a user-VA mapping
 *   exists;
 * then it execs itself with the fds inherited and, in the new image: DMA works
 *   before CHANGE_PROCESS; VmPin is 0 until CHANGE_PROCESS moves the pins; too low
 *   an RLIMIT_MEMLOCK gives ENOMEM and changes nothing, a raised one succeeds; a
 *   second CHANGE_PROCESS is a no-op; UNMAP brings VmPin back to 0.
 *
 * Usage: guest-iommufd-smoke [BDF]     (default: the first edu device, 1234:11e8)
 * Build: gcc -O2 -Wall -Wextra -I lib -o guest-iommufd-smoke guest-iommufd-smoke.c
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "pci-find.h"

#include "vfio-compat.h"

#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_DMA_RUN 0x1
#define EDU_DMA_TO_RAM 0x2
#define EDU_BUF 0x40000

#define RAM_SIZE (2u << 20)
#define RAM_KB (RAM_SIZE >> 10)
#define RAM_IOVA 0x100000u /* edu's DMA mask is 28 bits */
#define UVA_SIZE (64u << 10)
#define UVA_IOVA 0x800000u
#define XFER 2048u /* QEMU 7.2's edu aborts on a DMA that reaches its buffer's end */

static unsigned test_no;
static unsigned failures;

static bool tap(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool tap(bool ok, const char *fmt, ...)
{
    va_list ap;

    printf("%s %u - ", ok ? "ok" : "not ok", ++test_no);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    if (!ok)
        failures++;
    return ok;
}

static void __attribute__((noreturn)) bail(const char *what)
{
    printf("Bail out! %s (%s)\n", what, strerror(errno));
    fflush(stdout);
    exit(1);
}

static const char *err_of(int r)
{
    return r < 0 ? strerror(errno) : "ok";
}

static volatile uint32_t *bar0;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool edu_dma(uint64_t src, uint64_t dst, uint32_t count, uint32_t cmd)
{
    double t0 = now();

    bar0[EDU_DMA_SRC / 4] = (uint32_t)src;
    bar0[EDU_DMA_DST / 4] = (uint32_t)dst;
    bar0[EDU_DMA_COUNT / 4] = count;
    bar0[EDU_DMA_CMD / 4] = cmd | EDU_DMA_RUN;
    while (bar0[EDU_DMA_CMD / 4] & EDU_DMA_RUN) {
        if (now() - t0 > 10.0)
            return false;
        usleep(1000);
    }
    return true;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 29 + i * 7 + (i >> 8));
}

/* RAM -> device, then device -> RAM at +0x10000; true when the bytes came back */
static bool edu_round_trip(uint8_t *ram, unsigned seed)
{
    fill(ram, XFER, seed);
    memset(ram + 0x10000, 0, XFER);
    return edu_dma(RAM_IOVA, EDU_BUF, XFER, 0) &&
           edu_dma(EDU_BUF, RAM_IOVA + 0x10000, XFER, EDU_DMA_TO_RAM) &&
           memcmp(ram, ram + 0x10000, XFER) == 0;
}

/* VmPin of this process in kB (mm->pinned_vm: what iommufd pins and accounts) */
static long vmpin_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmPin: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static bool has_cap_ipc_lock(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long eff = ~0ull;

    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "CapEff: %llx", &eff) == 1)
            break;
    if (f)
        fclose(f);
    return eff & (1ull << CAP_IPC_LOCK);
}

/* Root keeps every capability across execve unless the bounding set lost it; as root
 * iommufd accounts nothing, so VmPin only moves without CAP_IPC_LOCK. */
static int drop_cap_ipc_lock(void)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct data[2];

    if (prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0) < 0)
        return -1;
    if (syscall(SYS_capget, &hdr, data) < 0)
        return -1;
    data[0].effective &= ~(1u << CAP_IPC_LOCK);
    data[0].permitted &= ~(1u << CAP_IPC_LOCK);
    data[0].inheritable &= ~(1u << CAP_IPC_LOCK);
    return (int)syscall(SYS_capset, &hdr, data);
}

static int set_memlock_soft(rlim_t bytes)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0)
        return -1;
    rl.rlim_cur = bytes;
    return setrlimit(RLIMIT_MEMLOCK, &rl);
}

static int change_process(int iommufd)
{
    struct iommu_ioas_change_process cp = { .size = sizeof(cp) };

    return ioctl(iommufd, IOMMU_IOAS_CHANGE_PROCESS, &cp);
}

static int find_edu(char *bdf, size_t len)
{
    return pci_find(0x1234, 0x11e8, bdf, len);
}

/* /dev/vfio/devices/vfioN of a PCI device, from sysfs BDF/vfio-dev/ */
static int cdev_path(const char *bdf, char *out, size_t len)
{
    char path[PATH_MAX];
    DIR *d;
    struct dirent *e;
    int r = -1;

    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
    if (!(d = opendir(path)))
        return -1;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, "vfio", 4) == 0) {
            snprintf(out, len, "/dev/vfio/devices/%s", e->d_name);
            r = 0;
            break;
        }
    closedir(d);
    return r;
}

static int iommu_group_of(const char *bdf)
{
    char path[PATH_MAX], target[PATH_MAX];
    ssize_t n;
    const char *slash;

    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
    n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return -1;
    target[n] = '\0';
    slash = strrchr(target, '/');
    return atoi(slash ? slash + 1 : target);
}

/* BAR0 of the device fd, mapped at a new address in each image */
static void map_bar0(int device)
{
    struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };

    if (ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &bar) < 0)
        bail("BAR0 region info");
    bar0 = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, device, bar.offset);
    if (bar0 == MAP_FAILED)
        bail("mmap BAR0");
}

static int ioas_unmap(int iommufd, uint32_t ioas, uint64_t iova, uint64_t length)
{
    struct iommu_ioas_unmap un = { .size = sizeof(un), .ioas_id = ioas, .iova = iova,
                                   .length = length };

    return ioctl(iommufd, IOMMU_IOAS_UNMAP, &un);
}

/* ------------------------------------------------------------------ the new image */

static int after_exec(char **argv)
{
    int iommufd = atoi(argv[2]), device = atoi(argv[3]), memfd = atoi(argv[4]);
    uint32_t ioas = (uint32_t)atoi(argv[5]);
    long pin, pin2;
    uint8_t *ram, want[XFER];
    int r, e;
    bool dma;

    test_no = (unsigned)atoi(argv[6]);
    failures = (unsigned)atoi(argv[7]);
    printf("# new image, pid %d: iommufd %d, cdev %d, memfd %d, ioas %u\n", (int)getpid(),
           iommufd, device, memfd, ioas);
    tap(!has_cap_ipc_lock(), "after exec: still no CAP_IPC_LOCK (bounding set)");
    tap(fcntl(iommufd, F_GETFD) >= 0 && fcntl(device, F_GETFD) >= 0 && fcntl(memfd, F_GETFD) >= 0,
        "after exec: /dev/iommu, cdev and memfd fds inherited");

    pin = vmpin_kb();
    tap(pin == 0, "after exec: VmPin %ld kB before CHANGE_PROCESS (the pins belong to the "
        "old mm)", pin);

    map_bar0(device);
    ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (ram == MAP_FAILED)
        bail("mmap memfd after exec");
    /* the old image left seed 9 in the device buffer */
    memset(ram + 0x20000, 0, XFER);
    fill(want, XFER, 9);
    dma = edu_dma(EDU_BUF, RAM_IOVA + 0x20000, XFER, EDU_DMA_TO_RAM) &&
          memcmp(ram + 0x20000, want, XFER) == 0;
    tap(dma, "after exec, BEFORE CHANGE_PROCESS: edu DMA device -> RAM, the old image's %u "
        "bytes arrive in the memfd", XFER);
    tap(edu_round_trip(ram, 10), "after exec, BEFORE CHANGE_PROCESS: edu DMA both ways");

    /* The charge goes to the user's locked_vm, where the old image's charge still is
     * (same uid): the new one must fit next to it. */
    r = set_memlock_soft(RAM_SIZE / 2);
    e = errno;
    if (r < 0)
        bail("setrlimit");
    r = change_process(iommufd);
    e = errno;
    pin2 = vmpin_kb();
    tap(r < 0 && e == ENOMEM && pin2 == 0,
        "CHANGE_PROCESS with RLIMIT_MEMLOCK %u kB (< %u kB pinned): %s, VmPin still %ld kB",
        RAM_KB / 2, RAM_KB, r < 0 ? strerror(e) : "succeeded", pin2);
    if (set_memlock_soft(RAM_SIZE) < 0)
        bail("setrlimit");
    r = change_process(iommufd);
    e = errno;
    pin2 = vmpin_kb();
    tap(r < 0 && e == ENOMEM && pin2 == 0,
        "CHANGE_PROCESS with RLIMIT_MEMLOCK %u kB (= pinned): %s, VmPin still %ld kB: the "
        "old image's charge is still on the user's locked_vm", RAM_KB,
        r < 0 ? strerror(e) : "succeeded", pin2);
    tap(edu_round_trip(ram, 11), "after the failed CHANGE_PROCESS: DMA both ways unaffected");
    if (set_memlock_soft(2 * RAM_SIZE) < 0)
        bail("setrlimit");
    r = change_process(iommufd);
    e = errno;
    pin2 = vmpin_kb();
    tap(r == 0 && pin2 == RAM_KB, "CHANGE_PROCESS with RLIMIT_MEMLOCK %u kB (2 x pinned): %s, "
        "VmPin %ld -> %ld kB", 2 * RAM_KB, r < 0 ? strerror(e) : "0", pin, pin2);
    r = change_process(iommufd);
    e = errno;
    pin = vmpin_kb();
    tap(r == 0 && pin == pin2, "a second CHANGE_PROCESS: %s, VmPin still %ld kB (no-op)",
        r < 0 ? strerror(e) : "0", pin);
    tap(edu_round_trip(ram, 12), "after CHANGE_PROCESS: edu DMA both ways");
    if (set_memlock_soft(RLIM_INFINITY) < 0)
        bail("setrlimit");

    r = ioas_unmap(iommufd, ioas, RAM_IOVA, RAM_SIZE);
    pin = vmpin_kb();
    tap(r == 0 && pin == 0, "IOMMU_IOAS_UNMAP of the memfd range: %s, VmPin %ld kB", err_of(r),
        pin);
    munmap(ram, RAM_SIZE);
    close(memfd);
    close(device);
    close(iommufd);
    printf("1..%u\n", test_no);
    return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ the first image */

int main(int argc, char **argv)
{
    char bdf[NAME_MAX + 1], cdev[PATH_MAX], gpath[64];
    char a_iommufd[16], a_dev[16], a_mem[16], a_ioas[16], a_n[16], a_f[16];
    struct stat st;
    struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
    struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
    struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
    struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
    struct iommu_ioas_map_file mf = { .size = sizeof(mf) };
    struct iommu_ioas_map um = { .size = sizeof(um) };
    int iommufd, device, dev2, memfd, r, e, grp, gfd;
    long pin0, pin1, pin2;
    uint8_t *ram, *uva, pat[XFER];
    uint16_t cmd = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 8 && strcmp(argv[1], "--after-exec") == 0)
        return after_exec(argv);
    printf("# guest-iommufd-smoke: raw iommufd + vfio cdev + edu\n");
    if (argc > 1)
        snprintf(bdf, sizeof(bdf), "%s", argv[1]);
    else if (find_edu(bdf, sizeof(bdf)) < 0)
        bail("no edu device (1234:11e8) in /sys/bus/pci/devices");

    r = drop_cap_ipc_lock();
    tap(r == 0 && !has_cap_ipc_lock(), "CAP_IPC_LOCK dropped from the bounding, permitted and "
        "effective sets: %s", err_of(r));
    if (set_memlock_soft(RLIM_INFINITY) < 0)
        bail("RLIMIT_MEMLOCK unlimited (init runs the test with ulimit -l unlimited)");

    r = stat("/dev/iommu", &st);
    tap(r == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 10,
        "/dev/iommu is a char device (%u:%u)", r == 0 ? major(st.st_rdev) : 0,
        r == 0 ? minor(st.st_rdev) : 0);
    iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
    if (!tap(iommufd >= 0, "open /dev/iommu: fd %d", iommufd))
        bail("no /dev/iommu");
    r = ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc);
    if (!tap(r == 0 && alloc.out_ioas_id > 0, "IOMMU_IOAS_ALLOC: %s, ioas %u", err_of(r),
             alloc.out_ioas_id))
        bail("no IOAS");

    if (cdev_path(bdf, cdev, sizeof(cdev)) < 0)
        bail("no sysfs vfio-dev/ for the edu device (CONFIG_VFIO_DEVICE_CDEV?)");
    device = open(cdev, O_RDWR | O_CLOEXEC);
    if (!tap(device >= 0, "open %s (edu %s): fd %d", cdev, bdf, device))
        bail("cannot open the cdev");
    bind.iommufd = iommufd;
    r = ioctl(device, VFIO_DEVICE_BIND_IOMMUFD, &bind);
    if (!tap(r == 0, "VFIO_DEVICE_BIND_IOMMUFD: %s, devid %u", err_of(r), bind.out_devid))
        bail("cannot bind");
    attach.pt_id = alloc.out_ioas_id;
    r = ioctl(device, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach);
    if (!tap(r == 0 && attach.pt_id != alloc.out_ioas_id && attach.pt_id != bind.out_devid,
             "VFIO_DEVICE_ATTACH_IOMMUFD_PT(ioas %u): %s, pt_id now %u (the automatic HWPT)",
             alloc.out_ioas_id, err_of(r), attach.pt_id))
        bail("cannot attach");

    /* single-open: the new image must inherit the fd, it could not bind its own */
    r = ioctl(device, VFIO_DEVICE_BIND_IOMMUFD, &bind);
    e = errno;
    tap(r < 0 && e == EINVAL, "BIND_IOMMUFD again on the same fd: %s",
        r < 0 ? strerror(e) : "accepted");
    dev2 = open(cdev, O_RDWR | O_CLOEXEC);
    r = dev2 >= 0 ? ioctl(dev2, VFIO_DEVICE_BIND_IOMMUFD, &bind) : -1;
    e = errno;
    tap(dev2 >= 0 && r < 0 && e == EINVAL, "a second open of the cdev opens (fd %d) but cannot "
        "bind: %s", dev2, r < 0 ? strerror(e) : "accepted");
    if (dev2 >= 0)
        close(dev2);
    grp = iommu_group_of(bdf);
    snprintf(gpath, sizeof(gpath), "/dev/vfio/%d", grp);
    gfd = open(gpath, O_RDWR | O_CLOEXEC);
    e = errno;
    tap(gfd < 0 && e == EBUSY, "the group path %s is blocked while the cdev is bound: %s", gpath,
        gfd < 0 ? strerror(e) : "opened");
    if (gfd >= 0)
        close(gfd);

    map_bar0(device);
    r = ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &cfg);
    if (r == 0 && pread(device, &cmd, 2, cfg.offset + PCI_COMMAND) == 2) {
        cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
        if (pwrite(device, &cmd, 2, cfg.offset + PCI_COMMAND) != 2)
            r = -1;
    } else {
        r = -1;
    }
    tap(r == 0, "config space through the cdev: memory + bus master on (0x%04x)", cmd);

    memfd = memfd_create("guest-ram", MFD_CLOEXEC);
    if (memfd < 0 || ftruncate(memfd, RAM_SIZE) < 0)
        bail("memfd");
    ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (ram == MAP_FAILED)
        bail("mmap memfd");
    pin0 = vmpin_kb();
    mf.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
    mf.ioas_id = alloc.out_ioas_id;
    mf.fd = memfd;
    mf.start = 0;
    mf.length = RAM_SIZE;
    mf.iova = RAM_IOVA;
    r = ioctl(iommufd, IOMMU_IOAS_MAP_FILE, &mf);
    pin1 = vmpin_kb();
    if (!tap(r == 0 && mf.iova == RAM_IOVA, "IOMMU_IOAS_MAP_FILE(memfd, start 0, %u kB) at iova "
             "0x%x: %s", RAM_KB, RAM_IOVA, err_of(r)))
        bail("cannot map the memfd");
    tap(pin1 - pin0 == RAM_KB, "VmPin %ld -> %ld kB: rose by the mapped %u kB", pin0, pin1,
        RAM_KB);

    fill(pat, XFER, 1);
    memcpy(ram, pat, XFER);
    memset(ram + 0x10000, 0, XFER);
    tap(edu_dma(RAM_IOVA, EDU_BUF, XFER, 0) &&
            edu_dma(EDU_BUF, RAM_IOVA + 0x10000, XFER, EDU_DMA_TO_RAM) &&
            memcmp(ram + 0x10000, pat, XFER) == 0,
        "edu DMA RAM -> device -> RAM through the file mapping: %u bytes match", XFER);

    r = change_process(iommufd);
    e = errno;
    pin2 = vmpin_kb();
    tap(r == 0 && pin2 == pin1, "CHANGE_PROCESS in the owning process: %s, VmPin still %ld kB "
        "(no-op)", r < 0 ? strerror(e) : "0", pin2);

    uva = mmap(NULL, UVA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (uva == MAP_FAILED)
        bail("mmap anonymous");
    memset(uva, 0x5a, UVA_SIZE);
    um.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
    um.ioas_id = alloc.out_ioas_id;
    um.user_va = (uintptr_t)uva;
    um.length = UVA_SIZE;
    um.iova = UVA_IOVA;
    r = ioctl(iommufd, IOMMU_IOAS_MAP, &um);
    tap(r == 0, "IOMMU_IOAS_MAP of %u kB anonymous memory (user VA) at iova 0x%x: %s",
        UVA_SIZE >> 10, UVA_IOVA, err_of(r));
    r = change_process(iommufd);
    e = errno;
    tap(r < 0 && e == EINVAL, "CHANGE_PROCESS with a user-VA mapping present: %s",
        r < 0 ? strerror(e) : "accepted");
    r = ioas_unmap(iommufd, alloc.out_ioas_id, UVA_IOVA, UVA_SIZE);
    tap(r == 0 && vmpin_kb() == pin1, "IOMMU_IOAS_UNMAP of the user-VA range: %s, VmPin %ld kB",
        err_of(r), vmpin_kb());
    munmap(uva, UVA_SIZE);
    r = change_process(iommufd);
    e = errno;
    tap(r == 0, "CHANGE_PROCESS once only file mappings are left: %s (the EINVAL was the "
        "user-VA mapping)", r < 0 ? strerror(e) : "0");

    /* the data the new image must find in the device */
    fill(ram, XFER, 9);
    tap(edu_dma(RAM_IOVA, EDU_BUF, XFER, 0), "edu DMA RAM -> device: seed for the new image");

    if (fcntl(iommufd, F_SETFD, 0) < 0 || fcntl(device, F_SETFD, 0) < 0 ||
        fcntl(memfd, F_SETFD, 0) < 0)
        bail("clear FD_CLOEXEC");
    snprintf(a_iommufd, sizeof(a_iommufd), "%d", iommufd);
    snprintf(a_dev, sizeof(a_dev), "%d", device);
    snprintf(a_mem, sizeof(a_mem), "%d", memfd);
    snprintf(a_ioas, sizeof(a_ioas), "%u", alloc.out_ioas_id);
    snprintf(a_n, sizeof(a_n), "%u", test_no);
    snprintf(a_f, sizeof(a_f), "%u", failures);
    printf("# execve /proc/self/exe, VmPin %ld kB\n", vmpin_kb());
    {
        char *next[] = { argv[0], (char *)"--after-exec", a_iommufd, a_dev, a_mem, a_ioas, a_n,
                         a_f, NULL };
        execv("/proc/self/exe", next);
    }
    bail("execv /proc/self/exe");
}
