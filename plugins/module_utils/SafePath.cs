// Copyright: Contributors to loopbreaker.notion
// GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

// Handle-based path checks for plugins/modules/win_bridge.ps1 (the WITHIN rule of
// plugins/module_utils/_bridge_vocabulary.py, typed moves and the administrator-only
// staging folder). The bridge runs as an administrator in folders users control, so a
// path is never checked by name and then used by name: every component strictly below
// `within` is opened without following reparse points (FILE_FLAG_OPEN_REPARSE_POINT),
// its attributes are read from that handle, and the handle is kept open without
// FILE_SHARE_DELETE while the operation runs, so the component cannot be renamed,
// deleted or replaced by a junction meanwhile. Messages match the Python twin's
// (plugins/plugin_utils/_simulated_windows.py) word for word.

//TypeAccelerator -Name LoopbreakerSafePath -TypeName SafePath

using Microsoft.Win32.SafeHandles;
using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.IO;
using System.Runtime.InteropServices;
using System.Security.AccessControl;
using System.Security.Principal;
using System.Text;

namespace ansible_collections.loopbreaker.notion.plugins.module_utils.SafePath
{
    internal static class NativeMethods
    {
        public const uint FILE_READ_ATTRIBUTES = 0x0080;
        public const uint FILE_LIST_DIRECTORY = 0x0001;
        public const uint DELETE = 0x00010000;
        public const uint READ_CONTROL = 0x00020000;
        public const uint WRITE_DAC = 0x00040000;
        public const uint WRITE_OWNER = 0x00080000;
        public const uint SYNCHRONIZE = 0x00100000;

        public const uint FILE_SHARE_READ = 0x1;
        public const uint FILE_SHARE_WRITE = 0x2;
        public const uint FILE_SHARE_DELETE = 0x4;
        public const uint OPEN_EXISTING = 3;
        public const uint FILE_FLAG_BACKUP_SEMANTICS = 0x02000000;
        public const uint FILE_FLAG_OPEN_REPARSE_POINT = 0x00200000;

        public const uint FILE_ATTRIBUTE_DIRECTORY = 0x10;
        public const uint FILE_ATTRIBUTE_REPARSE_POINT = 0x400;
        public const uint IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003;
        public const uint IO_REPARSE_TAG_SYMLINK = 0xA000000C;

        public const int FileAttributeTagInfo = 9;
        public const int FileRenameInfo = 3;
        public const int FileDispositionInfo = 4;
        public const int FileDispositionInfoEx = 21;
        public const uint FILE_DISPOSITION_FLAG_DELETE = 0x1;
        public const uint FILE_DISPOSITION_FLAG_POSIX_SEMANTICS = 0x2;
        public const uint FILE_DISPOSITION_FLAG_IGNORE_READONLY_ATTRIBUTE = 0x10;
        public const uint FILE_READ_DATA = 0x0001;
        public const uint FILE_WRITE_ATTRIBUTES = 0x0100;
        public const int ERROR_INVALID_PARAMETER = 87;

        public const uint OWNER_SECURITY_INFORMATION = 0x1;
        public const uint DACL_SECURITY_INFORMATION = 0x4;
        public const uint PROTECTED_DACL_SECURITY_INFORMATION = 0x80000000;
        public const uint UNPROTECTED_DACL_SECURITY_INFORMATION = 0x20000000;
        public const int SE_FILE_OBJECT = 1;

        public const uint SEF_DACL_AUTO_INHERIT = 0x01;
        public const uint SEF_AVOID_PRIVILEGE_CHECK = 0x08;
        public const uint SEF_AVOID_OWNER_CHECK = 0x10;
        public const uint SEF_DEFAULT_OWNER_FROM_PARENT = 0x20;

        public const int ERROR_FILE_NOT_FOUND = 2;
        public const int ERROR_PATH_NOT_FOUND = 3;

        [StructLayout(LayoutKind.Sequential)]
        public struct FILE_ATTRIBUTE_TAG_INFO
        {
            public uint FileAttributes;
            public uint ReparseTag;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct BY_HANDLE_FILE_INFORMATION
        {
            public uint FileAttributes;
            public System.Runtime.InteropServices.ComTypes.FILETIME CreationTime;
            public System.Runtime.InteropServices.ComTypes.FILETIME LastAccessTime;
            public System.Runtime.InteropServices.ComTypes.FILETIME LastWriteTime;
            public uint VolumeSerialNumber;
            public uint FileSizeHigh;
            public uint FileSizeLow;
            public uint NumberOfLinks;
            public uint FileIndexHigh;
            public uint FileIndexLow;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct GENERIC_MAPPING
        {
            public uint GenericRead;
            public uint GenericWrite;
            public uint GenericExecute;
            public uint GenericAll;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct SECURITY_ATTRIBUTES
        {
            public int nLength;
            public IntPtr lpSecurityDescriptor;
            public bool bInheritHandle;
        }

        [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
        public static extern SafeFileHandle CreateFileW(string lpFileName, uint dwDesiredAccess, uint dwShareMode,
            IntPtr lpSecurityAttributes, uint dwCreationDisposition, uint dwFlagsAndAttributes, IntPtr hTemplateFile);

        [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
        public static extern bool CreateDirectoryW(string lpPathName, ref SECURITY_ATTRIBUTES lpSecurityAttributes);

        [DllImport("kernel32.dll", SetLastError = true)]
        public static extern bool GetFileInformationByHandleEx(SafeFileHandle hFile, int FileInformationClass,
            out FILE_ATTRIBUTE_TAG_INFO lpFileInformation, uint dwBufferSize);

        [DllImport("kernel32.dll", SetLastError = true)]
        public static extern bool GetFileInformationByHandle(SafeFileHandle hFile,
            out BY_HANDLE_FILE_INFORMATION lpFileInformation);

        [DllImport("kernel32.dll", SetLastError = true)]
        public static extern bool SetFileInformationByHandle(SafeFileHandle hFile, int FileInformationClass,
            IntPtr lpFileInformation, uint dwBufferSize);

        [DllImport("advapi32.dll", SetLastError = true)]
        public static extern uint GetSecurityInfo(SafeFileHandle handle, int objectType, uint securityInfo,
            out IntPtr owner, out IntPtr group, out IntPtr dacl, out IntPtr sacl, out IntPtr securityDescriptor);

        [DllImport("advapi32.dll", SetLastError = true)]
        public static extern uint SetSecurityInfo(SafeFileHandle handle, int objectType, uint securityInfo,
            byte[] owner, IntPtr group, byte[] dacl, IntPtr sacl);

        [DllImport("advapi32.dll", SetLastError = true)]
        public static extern bool CreatePrivateObjectSecurityEx(IntPtr parentDescriptor, byte[] creatorDescriptor,
            out IntPtr newDescriptor, IntPtr objectType, bool isContainerObject, uint autoInheritFlags, IntPtr token,
            ref GENERIC_MAPPING genericMapping);

        [DllImport("advapi32.dll", SetLastError = true)]
        public static extern bool DestroyPrivateObjectSecurity(ref IntPtr objectDescriptor);

        [DllImport("advapi32.dll", SetLastError = true)]
        public static extern uint GetSecurityDescriptorLength(IntPtr securityDescriptor);

        // Low-level: sets exactly this descriptor on this object, with no propagation to children
        // (SetSecurityInfo would walk the tree below by name).
        [DllImport("ntdll.dll")]
        public static extern int NtSetSecurityObject(SafeFileHandle handle, uint securityInformation, byte[] securityDescriptor);

        [DllImport("kernel32.dll")]
        public static extern IntPtr LocalFree(IntPtr hMem);

        [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
        public static extern uint GetFinalPathNameByHandleW(SafeFileHandle hFile, StringBuilder lpszFilePath,
            uint cchFilePath, uint dwFlags);

        public const uint GENERIC_WRITE = 0x40000000;
        public const uint CREATE_NEW = 1;
    }

    /// <summary>What an opened (never followed) file-system entry is.</summary>
    public sealed class ItemInfo
    {
        public bool Exists;
        public bool IsDirectory;
        public bool IsLink;
        public string Type;
        public uint Links;
        public string OwnerSid;
    }

    /// <summary>An open handle to one entry, opened without following a reparse point.</summary>
    public sealed class ItemHandle : IDisposable
    {
        internal SafeFileHandle Handle;
        public string Path;
        public ItemInfo Info;

        public void Dispose()
        {
            if (Handle != null) Handle.Dispose();
        }

        /// <summary>Rename this very object (not whatever has its old name now); fails if destination exists.</summary>
        public void Rename(string destination)
        {
            RenameTo(null, destination, false, destination);
        }

        /// <summary>
        /// Rename this very object to leaf inside the directory parent is open on: the new name is looked up
        /// relative to that handle, never through the path of the parent, so a parent turned into a junction
        /// since it was checked (possible while it was empty) cannot redirect the move.
        /// </summary>
        public void RenameInto(ItemHandle parent, string leaf, bool replace)
        {
            if (leaf.IndexOf('\\') >= 0 || leaf.IndexOf('/') >= 0 || leaf == "." || leaf == "..")
                throw new ArgumentException(String.Format("'{0}' is not a single name", leaf));
            RenameTo(parent, leaf, replace, System.IO.Path.Combine(parent.Path, leaf));
        }

        private void RenameTo(ItemHandle root, string name, bool replace, string shown)
        {
            byte[] bytes = Encoding.Unicode.GetBytes(name);
            // FILE_RENAME_INFO: BOOLEAN ReplaceIfExists (padded to a pointer), HANDLE RootDirectory, DWORD length, WCHAR[].
            int offset = IntPtr.Size * 2;
            int size = offset + 4 + bytes.Length + 2;
            IntPtr buffer = Marshal.AllocHGlobal(size);
            try
            {
                for (int i = 0; i < size; i++) Marshal.WriteByte(buffer, i, 0);
                if (replace) Marshal.WriteByte(buffer, 0, 1);
                if (root != null) Marshal.WriteIntPtr(buffer, IntPtr.Size, root.Handle.DangerousGetHandle());
                Marshal.WriteInt32(buffer, offset, bytes.Length);
                Marshal.Copy(bytes, 0, IntPtr.Add(buffer, offset + 4), bytes.Length);
                if (!NativeMethods.SetFileInformationByHandle(Handle, NativeMethods.FileRenameInfo, buffer, (uint)size))
                    throw SafePath.Error(Marshal.GetLastWin32Error(), String.Format("Cannot move '{0}' to '{1}'", Path, shown));
                Path = shown;
            }
            finally
            {
                Marshal.FreeHGlobal(buffer);
            }
        }

        /// <summary>Write all of data to this (new, empty) file through its handle.</summary>
        public void WriteAll(byte[] data)
        {
            using (FileStream stream = new FileStream(new SafeFileHandle(Handle.DangerousGetHandle(), false), FileAccess.Write))
            {
                stream.Write(data, 0, data.Length);
                stream.Flush(true);
            }
        }

        /// <summary>Delete this very object (after a failed write, say).</summary>
        public void Delete()
        {
            SafePath.DeleteThroughHandle(Handle, Path);
        }

        /// <summary>
        /// Owner set, explicit ACEs removed, DACL inherited from parent: computed as for a new child of parent and
        /// written with NtSetSecurityObject through this handle, so nothing below it is touched or followed.
        /// The caller enables SeRestorePrivilege (an owner other than the caller).
        /// </summary>
        public void SetOwnerInherited(string ownerSid, ItemHandle parent)
        {
            SecurityIdentifier owner = new SecurityIdentifier(ownerSid);
            IntPtr parentDescriptor;
            IntPtr unusedOwner, unusedGroup, unusedDacl, unusedSacl;
            uint status = NativeMethods.GetSecurityInfo(parent.Handle, NativeMethods.SE_FILE_OBJECT,
                NativeMethods.OWNER_SECURITY_INFORMATION | NativeMethods.DACL_SECURITY_INFORMATION,
                out unusedOwner, out unusedGroup, out unusedDacl, out unusedSacl, out parentDescriptor);
            if (status != 0)
                throw SafePath.Error((int)status, String.Format("Cannot read the security of '{0}'", parent.Path));
            try
            {
                // The creator descriptor: this owner and an empty, unprotected DACL (nothing explicit).
                RawAcl empty = new RawAcl(GenericAcl.AclRevision, 0);
                RawSecurityDescriptor creator = new RawSecurityDescriptor(ControlFlags.DiscretionaryAclPresent,
                    owner, owner, null, empty);
                byte[] creatorBytes = new byte[creator.BinaryLength];
                creator.GetBinaryForm(creatorBytes, 0);
                NativeMethods.GENERIC_MAPPING mapping = new NativeMethods.GENERIC_MAPPING
                {
                    GenericRead = 0x120089, GenericWrite = 0x120116, GenericExecute = 0x1200A0, GenericAll = 0x1F01FF,
                };
                IntPtr computed;
                if (!NativeMethods.CreatePrivateObjectSecurityEx(parentDescriptor, creatorBytes, out computed, IntPtr.Zero,
                        Info.IsDirectory, NativeMethods.SEF_DACL_AUTO_INHERIT | NativeMethods.SEF_AVOID_OWNER_CHECK |
                        NativeMethods.SEF_AVOID_PRIVILEGE_CHECK, IntPtr.Zero, ref mapping))
                    throw SafePath.Error(Marshal.GetLastWin32Error(), "Cannot compute the inherited security");
                try
                {
                    byte[] descriptor = new byte[NativeMethods.GetSecurityDescriptorLength(computed)];
                    Marshal.Copy(computed, descriptor, 0, descriptor.Length);
                    int result = NativeMethods.NtSetSecurityObject(Handle,
                        NativeMethods.OWNER_SECURITY_INFORMATION | NativeMethods.DACL_SECURITY_INFORMATION |
                        NativeMethods.UNPROTECTED_DACL_SECURITY_INFORMATION, descriptor);
                    if (result != 0)
                        throw new Win32Exception(String.Format("Cannot set the owner of '{0}': NTSTATUS 0x{1:X8}", Path, result));
                }
                finally
                {
                    NativeMethods.DestroyPrivateObjectSecurity(ref computed);
                }
            }
            finally
            {
                NativeMethods.LocalFree(parentDescriptor);
            }
        }

        /// <summary>Owner and DACL of the object this handle is open on.</summary>
        public RawSecurityDescriptor ReadSecurity()
        {
            IntPtr descriptor;
            IntPtr unusedOwner, unusedGroup, unusedDacl, unusedSacl;
            uint status = NativeMethods.GetSecurityInfo(Handle, NativeMethods.SE_FILE_OBJECT,
                NativeMethods.OWNER_SECURITY_INFORMATION | NativeMethods.DACL_SECURITY_INFORMATION,
                out unusedOwner, out unusedGroup, out unusedDacl, out unusedSacl, out descriptor);
            if (status != 0)
                throw SafePath.Error((int)status, String.Format("Cannot read the security of '{0}'", Path));
            try
            {
                byte[] bytes = new byte[NativeMethods.GetSecurityDescriptorLength(descriptor)];
                Marshal.Copy(descriptor, bytes, 0, bytes.Length);
                return new RawSecurityDescriptor(bytes, 0);
            }
            finally
            {
                NativeMethods.LocalFree(descriptor);
            }
        }

        /// <summary>Replace owner and DACL of this object only (no propagation), e.g. a protected ACL.</summary>
        public void WriteSecurity(RawSecurityDescriptor descriptor, bool isProtected)
        {
            byte[] bytes = new byte[descriptor.BinaryLength];
            descriptor.GetBinaryForm(bytes, 0);
            uint info = NativeMethods.OWNER_SECURITY_INFORMATION | NativeMethods.DACL_SECURITY_INFORMATION |
                (isProtected ? NativeMethods.PROTECTED_DACL_SECURITY_INFORMATION : NativeMethods.UNPROTECTED_DACL_SECURITY_INFORMATION);
            int result = NativeMethods.NtSetSecurityObject(Handle, info, bytes);
            if (result != 0)
                throw new Win32Exception(String.Format("Cannot set the security of '{0}': NTSTATUS 0x{1:X8}", Path, result));
        }
    }

    /// <summary>The components of a path below `within`, each held open until Dispose.</summary>
    public sealed class PathLease : IDisposable
    {
        private readonly List<ItemHandle> held = new List<ItemHandle>();
        public string Path;
        public string Within;
        internal ItemHandle Anchor;

        /// <summary>The deepest held directory: the parent of Path once every component exists.</summary>
        public ItemHandle Deepest
        {
            get { return held.Count > 0 ? held[held.Count - 1] : null; }
        }

        public int Count
        {
            get { return held.Count; }
        }

        internal void Add(ItemHandle handle)
        {
            held.Add(handle);
        }

        /// <summary>The held directory Path goes into (after CreateParents when some were missing).</summary>
        public ItemHandle Parent
        {
            get
            {
                string parent = System.IO.Path.GetDirectoryName(Path);
                ItemHandle candidate = Deepest ?? Anchor;
                if (candidate == null || !String.Equals(candidate.Path.TrimEnd('\\'), parent.TrimEnd('\\'),
                        StringComparison.OrdinalIgnoreCase))
                    throw new InvalidOperationException(String.Format("internal error: the folder of '{0}' is not held", Path));
                return candidate;
            }
        }

        /// <summary>
        /// Fail unless child, opened by name, really is the entry of that name inside its held parent: compares
        /// the final paths of both handles, so an entry reached through a parent that became a junction after it
        /// was checked is refused before anything is done to it.
        /// </summary>
        public void AssertInside(ItemHandle child)
        {
            ItemHandle parent = null;
            foreach (ItemHandle candidate in held)
            {
                if (String.Equals(candidate.Path.TrimEnd('\\'), System.IO.Path.GetDirectoryName(child.Path).TrimEnd('\\'),
                        StringComparison.OrdinalIgnoreCase)) parent = candidate;
            }
            if (parent == null && Anchor != null && String.Equals(Anchor.Path.TrimEnd('\\'),
                    System.IO.Path.GetDirectoryName(child.Path).TrimEnd('\\'), StringComparison.OrdinalIgnoreCase))
                parent = Anchor;
            if (parent == null)
                throw new InvalidOperationException(String.Format("internal error: the folder of '{0}' is not held", child.Path));
            SafePath.VerifyChild(parent, child, Path, Within);
        }

        /// <summary>
        /// Create the missing directories between the last held component and Path's parent, one at a time,
        /// each opened (not followed) and checked as soon as it exists.
        /// </summary>
        public void CreateParents()
        {
            string parent = System.IO.Path.GetDirectoryName(Path);
            List<string> missing = new List<string>();
            string current = parent;
            string known = Deepest != null ? Deepest.Path : Within;
            while (current != null && current.Length > known.Length)
            {
                missing.Insert(0, current);
                current = System.IO.Path.GetDirectoryName(current);
            }
            foreach (string directory in missing)
            {
                ItemHandle parentHandle = Deepest ?? Anchor;
                if (!SafePath.ExistsNoFollow(directory))
                {
                    Directory.CreateDirectory(directory);
                }
                ItemHandle created = SafePath.OpenComponent(directory, Path, Within);
                try
                {
                    SafePath.VerifyChild(parentHandle, created, Path, Within);
                }
                catch
                {
                    created.Dispose();
                    throw;
                }
                Add(created);
            }
        }

        /// <summary>After use: fail if a held directory became a reparse point (possible while it was empty).</summary>
        public void Recheck()
        {
            foreach (ItemHandle handle in held)
            {
                ItemInfo now = SafePath.Describe(handle.Handle, handle.Path);
                if (now.IsLink)
                    throw new IOException(String.Format("Refusing '{0}': '{1}' is a junction or symbolic link below '{2}'.",
                        Path, handle.Path, Within));
            }
        }

        public void Dispose()
        {
            for (int i = held.Count - 1; i >= 0; i--) held[i].Dispose();
            held.Clear();
            if (Anchor != null) Anchor.Dispose();
            Anchor = null;
        }
    }

    public static class SafePath
    {
        private const uint ShareNoDelete = NativeMethods.FILE_SHARE_READ | NativeMethods.FILE_SHARE_WRITE;
        private const uint ShareAll = ShareNoDelete | NativeMethods.FILE_SHARE_DELETE;
        private const uint NoFollow = NativeMethods.FILE_FLAG_BACKUP_SEMANTICS | NativeMethods.FILE_FLAG_OPEN_REPARSE_POINT;

        /// <summary>Our message, then Windows' own for the error code (sharing violation, access denied...).</summary>
        internal static Win32Exception Error(int code, string message)
        {
            return new Win32Exception(code, String.Format("{0}: {1}", message, new Win32Exception(code).Message));
        }

        public static readonly string[] TrustedOwners = new string[] {
            "S-1-5-32-544", "S-1-5-18", "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464" };

        internal static SafeFileHandle OpenRaw(string path, uint access, uint share, out int error)
        {
            SafeFileHandle handle = NativeMethods.CreateFileW(@"\\?\" + path, access, share, IntPtr.Zero,
                NativeMethods.OPEN_EXISTING, NoFollow, IntPtr.Zero);
            error = handle.IsInvalid ? Marshal.GetLastWin32Error() : 0;
            return handle;
        }

        internal static ItemInfo Describe(SafeFileHandle handle, string path)
        {
            NativeMethods.FILE_ATTRIBUTE_TAG_INFO tag;
            if (!NativeMethods.GetFileInformationByHandleEx(handle, NativeMethods.FileAttributeTagInfo, out tag,
                    (uint)Marshal.SizeOf(typeof(NativeMethods.FILE_ATTRIBUTE_TAG_INFO))))
                throw SafePath.Error(Marshal.GetLastWin32Error(), String.Format("Cannot read the attributes of '{0}'", path));
            NativeMethods.BY_HANDLE_FILE_INFORMATION information;
            if (!NativeMethods.GetFileInformationByHandle(handle, out information))
                throw SafePath.Error(Marshal.GetLastWin32Error(), String.Format("Cannot read the attributes of '{0}'", path));
            ItemInfo info = new ItemInfo();
            info.Exists = true;
            info.IsDirectory = (tag.FileAttributes & NativeMethods.FILE_ATTRIBUTE_DIRECTORY) != 0;
            // Any reparse point counts as a link: mount points, symbolic links, and tags we do not know.
            info.IsLink = (tag.FileAttributes & NativeMethods.FILE_ATTRIBUTE_REPARSE_POINT) != 0;
            info.Links = information.NumberOfLinks;
            if (info.IsLink)
                info.Type = tag.ReparseTag == NativeMethods.IO_REPARSE_TAG_MOUNT_POINT ? "junction" : "symlink";
            else
                info.Type = info.IsDirectory ? "directory" : "file";
            return info;
        }

        internal static bool ExistsNoFollow(string path)
        {
            int error;
            using (SafeFileHandle handle = OpenRaw(path, NativeMethods.FILE_READ_ATTRIBUTES, ShareAll, out error))
            {
                return !handle.IsInvalid;
            }
        }

        internal static ItemHandle OpenComponent(string component, string path, string within)
        {
            int error;
            SafeFileHandle handle = OpenRaw(component, NativeMethods.FILE_READ_ATTRIBUTES | NativeMethods.READ_CONTROL |
                NativeMethods.SYNCHRONIZE, ShareNoDelete, out error);
            if (handle.IsInvalid)
                throw SafePath.Error(error, String.Format("Cannot open '{0}' on the way to '{1}'", component, path));
            ItemHandle item = new ItemHandle { Handle = handle, Path = component };
            item.Info = Describe(handle, component);
            if (item.Info.IsLink)
            {
                item.Dispose();
                throw new IOException(String.Format("Refusing '{0}': '{1}' is a junction or symbolic link below '{2}'.",
                    path, component, within));
            }
            if (!item.Info.IsDirectory)
            {
                item.Dispose();
                throw new IOException(String.Format("Cannot create '{0}': a file of that name exists.", component));
            }
            return item;
        }

        /// <summary>Full, normalised path, with no trailing separator (roots keep theirs).</summary>
        public static string Normalize(string path)
        {
            string full = System.IO.Path.GetFullPath(path);
            string root = System.IO.Path.GetPathRoot(full);
            return full.Length > root.Length ? full.TrimEnd('\\') : full;
        }

        /// <summary>
        /// WITHIN: path must lie strictly inside within; within itself is opened following links (a relocated
        /// profile), every existing component strictly below it up to path's parent is opened without
        /// following any and held. Missing components stop the walk (CreateParents adds them).
        /// </summary>
        public static PathLease Lease(string path, string within)
        {
            string full = Normalize(path);
            string anchor = Normalize(within);
            if (!full.StartsWith(anchor.TrimEnd('\\') + "\\", StringComparison.OrdinalIgnoreCase))
                throw new IOException(String.Format("Refusing '{0}': it is not inside '{1}'.", path, within));
            PathLease lease = new PathLease { Path = full, Within = anchor };
            try
            {
                // within itself is followed (a profile relocated through a junction) but held, so it cannot be
                // renamed away while we work below it.
                int error;
                SafeFileHandle root = NativeMethods.CreateFileW(@"\\?\" + anchor, NativeMethods.FILE_READ_ATTRIBUTES |
                    NativeMethods.SYNCHRONIZE, ShareNoDelete, IntPtr.Zero, NativeMethods.OPEN_EXISTING,
                    NativeMethods.FILE_FLAG_BACKUP_SEMANTICS, IntPtr.Zero);
                error = root.IsInvalid ? Marshal.GetLastWin32Error() : 0;
                if (root.IsInvalid)
                    throw SafePath.Error(error, String.Format("Cannot open '{0}'", within));
                lease.Anchor = new ItemHandle { Handle = root, Path = anchor };
                string relative = full.Substring(anchor.TrimEnd('\\').Length + 1);
                string[] parts = relative.Split('\\');
                string current = anchor.TrimEnd('\\');
                for (int i = 0; i < parts.Length - 1; i++)
                {
                    current = current + "\\" + parts[i];
                    if (!ExistsNoFollow(current)) break;
                    ItemHandle previous = lease.Deepest ?? lease.Anchor;
                    ItemHandle component = OpenComponent(current, full, anchor);
                    try
                    {
                        // Opened by name: make sure it is the entry inside the component held just before.
                        VerifyChild(previous, component, full, anchor);
                    }
                    catch
                    {
                        component.Dispose();
                        throw;
                    }
                    lease.Add(component);
                }
                return lease;
            }
            catch
            {
                lease.Dispose();
                throw;
            }
        }

        /// <summary>The entry itself, not followed: type, hard links and owner; Exists false when missing.</summary>
        public static ItemInfo Inspect(string path)
        {
            return Inspect(path, null);
        }

        /// <summary>Inspect, and with a lease fail unless the entry really is inside the lease's held parent.</summary>
        public static ItemInfo Inspect(string path, PathLease lease)
        {
            int error;
            using (SafeFileHandle handle = OpenRaw(Normalize(path), NativeMethods.FILE_READ_ATTRIBUTES |
                NativeMethods.READ_CONTROL, ShareAll, out error))
            {
                if (handle.IsInvalid)
                {
                    if (error == NativeMethods.ERROR_FILE_NOT_FOUND || error == NativeMethods.ERROR_PATH_NOT_FOUND)
                        return new ItemInfo { Exists = false };
                    throw SafePath.Error(error, String.Format("Cannot open '{0}'", path));
                }
                ItemInfo info = Describe(handle, path);
                ItemHandle item = new ItemHandle { Handle = handle, Path = Normalize(path), Info = info };
                if (lease != null) lease.AssertInside(item);
                try
                {
                    SecurityIdentifier owner = item.ReadSecurity().Owner;
                    info.OwnerSid = owner == null ? null : owner.Value;
                }
                catch (Win32Exception)
                {
                    info.OwnerSid = null;
                }
                return info;
            }
        }

        /// <summary>
        /// The entry itself for a move: DELETE (and, to set attributes, WRITE_OWNER and WRITE_DAC), not followed,
        /// no delete sharing; null when it does not exist.
        /// </summary>
        public static ItemHandle OpenForMove(string path, bool security)
        {
            int error;
            uint access = NativeMethods.DELETE | NativeMethods.FILE_READ_ATTRIBUTES | NativeMethods.READ_CONTROL |
                NativeMethods.SYNCHRONIZE;
            if (security) access |= NativeMethods.WRITE_DAC | NativeMethods.WRITE_OWNER;
            SafeFileHandle handle = OpenRaw(Normalize(path), access, ShareNoDelete, out error);
            if (handle.IsInvalid)
            {
                if (error == NativeMethods.ERROR_FILE_NOT_FOUND || error == NativeMethods.ERROR_PATH_NOT_FOUND)
                    return null;
                throw SafePath.Error(error, String.Format("Cannot open '{0}'", path));
            }
            ItemHandle item = new ItemHandle { Handle = handle, Path = Normalize(path) };
            item.Info = Describe(handle, path);
            return item;
        }

        /// <summary>A directory, not followed, for reading and writing its security (ensure_admin_dir).</summary>
        public static ItemHandle OpenDirectory(string path, bool forWrite)
        {
            int error;
            uint access = NativeMethods.FILE_READ_ATTRIBUTES | NativeMethods.READ_CONTROL | NativeMethods.SYNCHRONIZE;
            if (forWrite) access |= NativeMethods.WRITE_DAC | NativeMethods.WRITE_OWNER;
            SafeFileHandle handle = OpenRaw(path, access, ShareNoDelete, out error);
            if (handle.IsInvalid)
            {
                if (error == NativeMethods.ERROR_FILE_NOT_FOUND || error == NativeMethods.ERROR_PATH_NOT_FOUND)
                    return null;
                throw SafePath.Error(error, String.Format("Cannot open '{0}'", path));
            }
            ItemHandle item = new ItemHandle { Handle = handle, Path = path };
            item.Info = Describe(handle, path);
            return item;
        }

        /// <summary>Create one directory with this security descriptor from the start (no moment without it).</summary>
        public static void CreateDirectoryWithSecurity(string path, RawSecurityDescriptor descriptor)
        {
            byte[] bytes = new byte[descriptor.BinaryLength];
            descriptor.GetBinaryForm(bytes, 0);
            GCHandle pinned = GCHandle.Alloc(bytes, GCHandleType.Pinned);
            try
            {
                NativeMethods.SECURITY_ATTRIBUTES attributes = new NativeMethods.SECURITY_ATTRIBUTES
                {
                    nLength = Marshal.SizeOf(typeof(NativeMethods.SECURITY_ATTRIBUTES)),
                    lpSecurityDescriptor = pinned.AddrOfPinnedObject(),
                    bInheritHandle = false,
                };
                if (!NativeMethods.CreateDirectoryW(path, ref attributes))
                    throw SafePath.Error(Marshal.GetLastWin32Error(), String.Format("Cannot create '{0}'", path));
            }
            finally
            {
                pinned.Free();
            }
        }

        /// <summary>
        /// A regular file's bytes, read through a handle opened without following a link (read_files); null when
        /// the entry is a link. Shares read, write and delete like the bridge's other readers, so files a running
        /// app holds open can be read.
        /// </summary>
        public static byte[] ReadFile(string path, long maxBytes, PathLease lease, out string error)
        {
            int code;
            SafeFileHandle handle = OpenRaw(Normalize(path), NativeMethods.FILE_READ_DATA | NativeMethods.FILE_READ_ATTRIBUTES |
                NativeMethods.SYNCHRONIZE, ShareAll, out code);
            if (handle.IsInvalid)
                throw SafePath.Error(code, String.Format("Cannot open '{0}'", path));
            if (lease != null)
            {
                try
                {
                    lease.AssertInside(new ItemHandle { Handle = handle, Path = Normalize(path) });
                }
                catch
                {
                    handle.Dispose();
                    throw;
                }
            }
            using (FileStream stream = new FileStream(handle, FileAccess.Read))
            {
                ItemInfo info = Describe(handle, path);
                if (info.IsLink) { error = "a junction or symbolic link"; return null; }
                if (info.IsDirectory) { error = "a directory"; return null; }
                if (stream.Length > maxBytes) { error = String.Format("larger than {0} bytes", maxBytes); return null; }
                byte[] data = new byte[stream.Length];
                int read = 0;
                while (read < data.Length)
                {
                    int got = stream.Read(data, read, data.Length - read);
                    if (got <= 0) break;
                    read += got;
                }
                error = null;
                return data;
            }
        }

        /// <summary>
        /// A regular file to verify and then hand to another program by name (verify_package, provision_package,
        /// run_as_user): opened without following a link and checked on that handle, read sharing only, so until
        /// the stream is disposed nobody can write, rename or delete it or put a link where it is, and verified to
        /// be the entry inside the lease's held parent. Checked by name and then opened by name, a symbolic link
        /// swapped in between would be followed, and the link itself, held by nobody, turned elsewhere later.
        /// </summary>
        public static FileStream OpenHeldFile(string path, PathLease lease)
        {
            int code;
            SafeFileHandle handle = OpenRaw(Normalize(path), NativeMethods.FILE_READ_DATA | NativeMethods.FILE_READ_ATTRIBUTES |
                NativeMethods.SYNCHRONIZE, NativeMethods.FILE_SHARE_READ, out code);
            if (handle.IsInvalid)
                throw SafePath.Error(code, String.Format("Cannot open '{0}'", path));
            try
            {
                ItemInfo info = Describe(handle, path);
                if (info.IsLink)
                    throw new IOException(String.Format("Refusing '{0}': it is a junction or symbolic link.", path));
                if (info.IsDirectory)
                    throw new IOException(String.Format("Refusing '{0}': it is a directory.", path));
                if (lease != null) lease.AssertInside(new ItemHandle { Handle = handle, Path = Normalize(path) });
                return new FileStream(handle, FileAccess.Read);
            }
            catch
            {
                handle.Dispose();
                throw;
            }
        }

        /// <summary>
        /// Delete an entry; a directory's content first, each entry opened without following links and deleted
        /// through its own handle, so a junction swapped in below is removed as a link, never walked into.
        /// </summary>
        public static void RemoveTree(string path)
        {
            RemoveTree(path, null);
        }

        /// <summary>RemoveTree, the entry first checked to be inside the lease's held parent.</summary>
        public static void RemoveTree(string path, PathLease lease)
        {
            string full = Normalize(path);
            SafeFileHandle handle = OpenForDelete(full);
            if (handle == null) return;
            using (handle)
            {
                ItemHandle item = new ItemHandle { Handle = handle, Path = full };
                if (lease != null) lease.AssertInside(item);
                RemoveOpened(item);
            }
        }

        private static SafeFileHandle OpenForDelete(string full)
        {
            int error;
            SafeFileHandle handle = OpenRaw(full, NativeMethods.DELETE | NativeMethods.FILE_READ_ATTRIBUTES |
                NativeMethods.FILE_WRITE_ATTRIBUTES | NativeMethods.FILE_LIST_DIRECTORY | NativeMethods.SYNCHRONIZE,
                ShareNoDelete, out error);
            if (handle.IsInvalid)
            {
                if (error == NativeMethods.ERROR_FILE_NOT_FOUND || error == NativeMethods.ERROR_PATH_NOT_FOUND) return null;
                throw SafePath.Error(error, String.Format("Cannot remove '{0}'", full));
            }
            return handle;
        }

        private static void RemoveOpened(ItemHandle item)
        {
            ItemInfo info = Describe(item.Handle, item.Path);
            if (info.IsDirectory && !info.IsLink)
            {
                // Listed by name, but every child is opened without following links and checked to be inside this
                // held directory before it is touched: were the directory emptied and turned into a junction
                // meanwhile, what the listing shows through it is refused, not deleted.
                foreach (string child in Directory.GetFileSystemEntries(item.Path))
                {
                    SafeFileHandle childHandle = OpenForDelete(child);
                    if (childHandle == null) continue;
                    using (childHandle)
                    {
                        ItemHandle childItem = new ItemHandle { Handle = childHandle, Path = child };
                        VerifyChild(item, childItem, item.Path, item.Path);
                        RemoveOpened(childItem);
                    }
                }
            }
            DeleteThroughHandle(item.Handle, item.Path);
        }

        internal static string FinalPath(SafeFileHandle handle, string shown)
        {
            StringBuilder buffer = new StringBuilder(1024);
            uint length = NativeMethods.GetFinalPathNameByHandleW(handle, buffer, (uint)buffer.Capacity, 0);
            if (length >= buffer.Capacity)
            {
                buffer = new StringBuilder((int)length + 1);
                length = NativeMethods.GetFinalPathNameByHandleW(handle, buffer, (uint)buffer.Capacity, 0);
            }
            if (length == 0 || length >= buffer.Capacity)
                throw Error(Marshal.GetLastWin32Error(), String.Format("Cannot tell where '{0}' is", shown));
            return buffer.ToString();
        }

        /// <summary>child (opened by name) must be the entry of its name directly inside parent (held).</summary>
        internal static void VerifyChild(ItemHandle parent, ItemHandle child, string path, string within)
        {
            string expected = FinalPath(parent.Handle, parent.Path).TrimEnd('\\') + "\\" + System.IO.Path.GetFileName(child.Path);
            string actual = FinalPath(child.Handle, child.Path);
            if (!String.Equals(expected, actual, StringComparison.OrdinalIgnoreCase))
                throw new IOException(String.Format("Refusing '{0}': '{1}' was reached through a junction or symbolic link " +
                    "below '{2}'.", path, child.Path, within));
        }

        /// <summary>
        /// A new file named leaf in the lease's held parent, opened for writing and deleting, checked to be inside
        /// that parent before anything is written (a stray empty file elsewhere is deleted at once).
        /// </summary>
        public static ItemHandle CreateInside(PathLease lease, string leaf)
        {
            ItemHandle parent = lease.Parent;
            string path = System.IO.Path.Combine(parent.Path, leaf);
            SafeFileHandle handle = NativeMethods.CreateFileW(@"\\?\" + path, NativeMethods.GENERIC_WRITE |
                NativeMethods.DELETE | NativeMethods.FILE_READ_ATTRIBUTES | NativeMethods.SYNCHRONIZE, 0, IntPtr.Zero,
                NativeMethods.CREATE_NEW, NativeMethods.FILE_FLAG_OPEN_REPARSE_POINT, IntPtr.Zero);
            if (handle.IsInvalid)
                throw Error(Marshal.GetLastWin32Error(), String.Format("Cannot create '{0}'", path));
            ItemHandle item = new ItemHandle { Handle = handle, Path = path };
            try
            {
                item.Info = Describe(handle, path);
                VerifyChild(parent, item, lease.Path, lease.Within);
            }
            catch
            {
                try { DeleteThroughHandle(handle, path); } catch (Win32Exception) { }
                item.Dispose();
                throw;
            }
            return item;
        }

        internal static void DeleteThroughHandle(SafeFileHandle handle, string path)
        {
            IntPtr buffer = Marshal.AllocHGlobal(4);
            try
            {
                // POSIX semantics: the name goes at once, so the parent can be deleted next even while another
                // process still holds a child open with delete sharing.
                Marshal.WriteInt32(buffer, (int)(NativeMethods.FILE_DISPOSITION_FLAG_DELETE |
                    NativeMethods.FILE_DISPOSITION_FLAG_POSIX_SEMANTICS |
                    NativeMethods.FILE_DISPOSITION_FLAG_IGNORE_READONLY_ATTRIBUTE));
                if (NativeMethods.SetFileInformationByHandle(handle, NativeMethods.FileDispositionInfoEx, buffer, 4))
                    return;
                int error = Marshal.GetLastWin32Error();
                if (error != NativeMethods.ERROR_INVALID_PARAMETER)
                    throw SafePath.Error(error, String.Format("Cannot remove '{0}'", path));
                // Before Windows 10 1809: the plain disposition (read-only entries were cleared by the caller).
                Marshal.WriteInt32(buffer, 1);
                if (!NativeMethods.SetFileInformationByHandle(handle, NativeMethods.FileDispositionInfo, buffer, 4))
                    throw SafePath.Error(Marshal.GetLastWin32Error(), String.Format("Cannot remove '{0}'", path));
            }
            finally
            {
                Marshal.FreeHGlobal(buffer);
            }
        }

        /// <summary>Whether sid is one no standard user can be.</summary>
        public static bool IsTrusted(SecurityIdentifier sid)
        {
            return sid != null && Array.IndexOf(TrustedOwners, sid.Value) >= 0;
        }

        /// <summary>
        /// SIDs other than the trusted owners that an ACL allows any of mask on the object itself (inherit-only
        /// ACEs, which apply to children only, and deny ACEs are not counted), sorted.
        /// </summary>
        public static string[] OthersAllowed(RawSecurityDescriptor descriptor, int mask)
        {
            SortedSet<string> others = new SortedSet<string>(StringComparer.Ordinal);
            RawAcl dacl = descriptor.DiscretionaryAcl;
            if (dacl == null)
            {
                others.Add("S-1-1-0");  // a NULL DACL grants everyone everything
                return new List<string>(others).ToArray();
            }
            foreach (GenericAce ace in dacl)
            {
                CommonAce common = ace as CommonAce;
                if (common == null || common.AceQualifier != AceQualifier.AccessAllowed) continue;
                if ((common.AceFlags & AceFlags.InheritOnly) != 0) continue;
                if ((common.AccessMask & mask) == 0) continue;
                if (IsTrusted(common.SecurityIdentifier)) continue;
                others.Add(common.SecurityIdentifier.Value);
            }
            return new List<string>(others).ToArray();
        }
    }
}
