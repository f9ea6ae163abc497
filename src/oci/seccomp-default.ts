// Docker 20.10's default seccomp profile (moby profiles/seccomp/default.json at
// v20.10.24, the dockerd this project tests against), in Docker's own profile
// format so that `--security-opt seccomp=FILE` takes the same format and both
// go through one converter (seccomp.ts). Data only: allowed system calls,
// argument-filtered ones, and the groups that depend on a capability or an
// architecture. Everything else fails with EPERM.
import type { DockerSeccompProfile, DockerSyscallRule } from './seccomp.js';

const names = (text: string): string[] => text.trim().split(/\s+/);
const allow = (text: string, rule: Omit<DockerSyscallRule, 'names' | 'action'> = {}): DockerSyscallRule => ({ names: names(text), action: 'SCMP_ACT_ALLOW', ...rule });

export const DOCKER_DEFAULT_SECCOMP: DockerSeccompProfile = {
  defaultAction: 'SCMP_ACT_ERRNO',
  archMap: [
    { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
    { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
    { architecture: 'SCMP_ARCH_MIPS64', subArchitectures: ['SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64N32'] },
    { architecture: 'SCMP_ARCH_MIPS64N32', subArchitectures: ['SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64'] },
    { architecture: 'SCMP_ARCH_MIPSEL64', subArchitectures: ['SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64N32'] },
    { architecture: 'SCMP_ARCH_MIPSEL64N32', subArchitectures: ['SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64'] },
    { architecture: 'SCMP_ARCH_S390X', subArchitectures: ['SCMP_ARCH_S390'] },
  ],
  syscalls: [
    allow(
      `
      accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 clock_adjtime
      clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
      clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create
      epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd
      eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
      fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
      flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync
      ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64
      getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername
      getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32
      getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid
      gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch
      io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set
      io_setup io_submit io_uring_enter io_uring_register io_uring_setup ipc kill landlock_add_rule
      landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen
      listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier
      memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2
      mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
      mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
      nanosleep newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2
      poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6
      pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom
      recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2
      restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
      rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity
      sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
      sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
      sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send
      sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
      setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32
      setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt
      set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown
      sigaltstack signalfd signalfd4 sigprocmask sigreturn socket socketcall socketpair splice stat
      stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time
      timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
      timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64
      times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat
      utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
      `,
    ),
    allow('ptrace', { includes: { minKernel: '4.8' } }),
    allow('personality', { args: [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }] }),
    allow('personality', { args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }] }),
    allow('personality', { args: [{ index: 0, value: 131072, op: 'SCMP_CMP_EQ' }] }),
    allow('personality', { args: [{ index: 0, value: 131080, op: 'SCMP_CMP_EQ' }] }),
    allow('personality', { args: [{ index: 0, value: 4294967295, op: 'SCMP_CMP_EQ' }] }),
    allow('sync_file_range2', { includes: { arches: ['ppc64le'] } }),
    allow('arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls', { includes: { arches: ['arm', 'arm64'] } }),
    allow('arch_prctl', { includes: { arches: ['amd64', 'x32'] } }),
    allow('modify_ldt', { includes: { arches: ['amd64', 'x32', 'x86'] } }),
    allow('s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr', { includes: { arches: ['s390', 's390x'] } }),
    allow('open_by_handle_at', { includes: { caps: ['CAP_DAC_READ_SEARCH'] } }),
    allow(
      `
      bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr
      move_mount name_to_handle_at open_tree perf_event_open quotactl quotactl_fd setdomainname
      sethostname setns syslog umount umount2 unshare
      `, { includes: { caps: ['CAP_SYS_ADMIN'] } },
    ),
    allow('clone', { args: [{ index: 0, value: 2114060288, op: 'SCMP_CMP_MASKED_EQ' }], excludes: { caps: ['CAP_SYS_ADMIN'], arches: ['s390', 's390x'] } }),
    allow('clone', { args: [{ index: 1, value: 2114060288, op: 'SCMP_CMP_MASKED_EQ' }], includes: { arches: ['s390', 's390x'] }, excludes: { caps: ['CAP_SYS_ADMIN'] } }),
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', excludes: { caps: ['CAP_SYS_ADMIN'], arches: ['mips3l64n32', 'mips64', 'mips64n32', 'mipsel', 'mipsel64'] }, errnoRet: 38 },
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', includes: { arches: ['mips3l64n32', 'mips64', 'mips64n32', 'mipsel', 'mipsel64'] }, excludes: { caps: ['CAP_SYS_ADMIN'] }, errnoRet: 89 },
    allow('reboot', { includes: { caps: ['CAP_SYS_BOOT'] } }),
    allow('chroot', { includes: { caps: ['CAP_SYS_CHROOT'] } }),
    allow('delete_module init_module finit_module', { includes: { caps: ['CAP_SYS_MODULE'] } }),
    allow('acct', { includes: { caps: ['CAP_SYS_PACCT'] } }),
    allow('kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace', { includes: { caps: ['CAP_SYS_PTRACE'] } }),
    allow('iopl ioperm', { includes: { caps: ['CAP_SYS_RAWIO'] } }),
    allow('settimeofday stime clock_settime', { includes: { caps: ['CAP_SYS_TIME'] } }),
    allow('vhangup', { includes: { caps: ['CAP_SYS_TTY_CONFIG'] } }),
    allow('get_mempolicy mbind set_mempolicy', { includes: { caps: ['CAP_SYS_NICE'] } }),
    allow('syslog', { includes: { caps: ['CAP_SYSLOG'] } }),
  ],
};
