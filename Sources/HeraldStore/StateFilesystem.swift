/// What the filesystem under a state directory means for the directory store, decided from its
/// statfs magic number. The store watches with inotify, which on a filesystem shared between hosts
/// reports only this host's writes: a stream would wait for ever for a change made on another host.
public enum StateFilesystem: Equatable, Sendable {
    /// A local filesystem (or one not known to be shared): the store works.
    case local
    /// A network or cluster filesystem, by name: the store refuses it.
    case shared(String)
    /// FUSE, under which local (ntfs-3g, fuse-overlayfs) and remote (sshfs, GlusterFS, s3fs)
    /// filesystems look alike: the store warns.
    case fuse

    /// The verdict for the magic number `magic` (statfs f_type).
    public init(magic: UInt32) {
        if magic == Self.fuseMagic {
            self = .fuse
        } else if let name = Self.sharedMagics[magic] {
            self = .shared(name)
        } else {
            self = .local
        }
    }

    static let fuseMagic: UInt32 = 0x6573_5546

    /// Network and cluster filesystems, as <linux/magic.h> and statfs(2) number them.
    static let sharedMagics: [UInt32: String] = [
        0x0000_6969: "NFS",
        0x0000_517B: "SMB",
        0xFF53_4D42: "CIFS",
        0xFE53_4D42: "SMB2",
        0x00C3_6400: "CephFS",
        0x0102_1997: "9P",
        0x5346_414F: "AFS",
        0x6B41_4653: "kAFS",
        0x7375_7245: "Coda",
        0x0000_564C: "NCP",
        0x0BD0_0BD0: "Lustre",
        0x0116_1970: "GFS2",
        0x7461_636F: "OCFS2",
        0x4750_4653: "GPFS",
        0x2003_0528: "OrangeFS",
    ]

    private static let remedy = "keep state_dir on a local filesystem of the one host that runs herald-fcgi and herald-runner; "
        + "to share jobs between hosts, use the PostgreSQL store (database_url) instead"

    /// Why the store refuses a state directory at `root` on this filesystem, or nil when it takes it.
    public func refusal(root: String) -> String? {
        guard case let .shared(name) = self else { return nil }
        return "\(root) is on \(name), a filesystem shared between hosts: inotify there sees only this host's writes, "
            + "so streams would wait for ever for changes made on another host; \(Self.remedy)"
    }

    /// What to warn about a state directory at `root` on this filesystem, or nil when nothing.
    public func warning(root: String) -> String? {
        guard self == .fuse else { return nil }
        return "\(root) is on a FUSE filesystem: if other hosts write to it (sshfs, GlusterFS, s3fs), inotify "
            + "does not see their writes and streams miss them; \(Self.remedy)"
    }
}
