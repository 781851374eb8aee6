import Foundation
import HeraldPOSIX
import Testing
@testable import HeraldStore

@Suite struct StateFilesystemTests {
    static let shared: [(UInt32, String)] = [
        (0x6969, "NFS"), (0x517B, "SMB"), (0xFF53_4D42, "CIFS"), (0xFE53_4D42, "SMB2"), (0x00C3_6400, "CephFS"),
        (0x0102_1997, "9P"), (0x5346_414F, "AFS"), (0x6B41_4653, "kAFS"), (0x7375_7245, "Coda"), (0x564C, "NCP"),
        (0x0BD0_0BD0, "Lustre"), (0x0116_1970, "GFS2"), (0x7461_636F, "OCFS2"), (0x4750_4653, "GPFS"), (0x2003_0528, "OrangeFS"),
    ]

    @Test(arguments: shared)
    func filesystemsSharedBetweenHostsAreRefusedByName(magic: UInt32, name: String) throws {
        let filesystem = StateFilesystem(magic: magic)
        #expect(filesystem == .shared(name))
        let refusal = try #require(filesystem.refusal(root: "/srv/herald"))
        #expect(refusal.hasPrefix("/srv/herald is on \(name), a filesystem shared between hosts"))
        #expect(refusal.contains("PostgreSQL store (database_url)"))
        #expect(filesystem.warning(root: "/srv/herald") == nil)
    }

    /// ext4, tmpfs, xfs, btrfs, overlayfs, zfs, f2fs, squashfs.
    @Test(arguments: [0xEF53, 0x0102_1994, 0x5846_5342, 0x9123_683E, 0x794C_7630, 0x2FC1_2FC1, 0xF2F5_2010, 0x7371_7368] as [UInt32])
    func localFilesystemsAreTakenSilently(magic: UInt32) {
        let filesystem = StateFilesystem(magic: magic)
        #expect(filesystem == .local)
        #expect(filesystem.refusal(root: "/var/lib/herald") == nil)
        #expect(filesystem.warning(root: "/var/lib/herald") == nil)
    }

    @Test func fuseIsTakenWithAWarningSinceItMayBeEitherKind() throws {
        let filesystem = StateFilesystem(magic: 0x6573_5546)
        #expect(filesystem == .fuse)
        #expect(filesystem.refusal(root: "/srv/herald") == nil)
        let warning = try #require(filesystem.warning(root: "/srv/herald"))
        #expect(warning.hasPrefix("/srv/herald is on a FUSE filesystem"))
        #expect(warning.contains("database_url"))
    }

    /// The real statfs through the wrapper, and a store opened on the local filesystems of this machine.
    @Test func aStoreOpensOnTheTemporaryDirectoryAndOnTmpfs() throws {
        var bases = [FileManager.default.temporaryDirectory.path]
        if FileManager.default.fileExists(atPath: "/dev/shm") {
            #expect(try FileSystem.filesystemType("/dev/shm") == 0x0102_1994)  // TMPFS_MAGIC
            bases.append("/dev/shm")
        }
        for base in bases {
            let root = "\(base)/herald-fs-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: root) }
            #expect(StateFilesystem(magic: try FileSystem.filesystemType(base)) == .local, "\(base)")
            let store = try DirectoryStore(root: root, create: true)
            #expect(store.filesystemWarning == nil)
            #expect(try DirectoryStore(root: root, create: false).filesystemWarning == nil)
        }
    }

    @Test func statfsOfAMissingPathNamesIt() {
        #expect(throws: SystemError("statfs", errno: ENOENT, path: "/no/such/herald")) { try FileSystem.filesystemType("/no/such/herald") }
    }
}
