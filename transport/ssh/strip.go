package ssh

import (
	"bytes"
	"debug/elf"
	"io"
	"os"
)

// strippedELF says how to send the ELF executable f without what no
// process reads when it runs: the bytes past the end of the last segment
// (DWARF, .symtab and .strtab, the section headers) are left off and the
// header no longer points at section headers. A go-built drover is 38 MB
// with them and 27 MB without, and a first deploy sends it to every host
// at once. The kernel and the dynamic loader read only the program
// headers; Go's tracebacks read .gopclntab, which a segment holds.
//
// It returns the new header (the first len(hdr) bytes of what is sent)
// and end, how many bytes of f are sent; ok is false when f is not an
// ELF executable this can shorten safely, and f is then sent as it is.
func strippedELF(f *os.File, size int64) (hdr []byte, end int64, ok bool) {
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, 0, false
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return nil, 0, false
	}
	var hlen, shoff, shnum, phoff int
	var phsize int64
	switch ef.Class {
	case elf.ELFCLASS64:
		hlen, shoff, shnum, phoff, phsize = 64, 0x28, 0x3c, 0x20, 56
	case elf.ELFCLASS32:
		hlen, shoff, shnum, phoff, phsize = 52, 0x20, 0x30, 0x1c, 32
	default:
		return nil, 0, false
	}
	hdr = make([]byte, hlen)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return nil, 0, false
	}
	bo := ef.ByteOrder
	var ph int64
	if ef.Class == elf.ELFCLASS64 {
		ph = int64(bo.Uint64(hdr[phoff:]))
	} else {
		ph = int64(bo.Uint32(hdr[phoff:]))
	}
	// The program headers themselves must stay, and every segment's bytes.
	end = max(int64(hlen), ph+int64(len(ef.Progs))*phsize)
	loads := 0
	for _, p := range ef.Progs {
		end = max(end, int64(p.Off+p.Filesz))
		if p.Type == elf.PT_LOAD {
			loads++
		}
	}
	if loads == 0 || end >= size {
		return nil, 0, false
	}
	// Whatever a running process may read lies inside a segment; a
	// section marked to be loaded that does not is an ELF this does not
	// understand, and it is sent whole.
	for _, s := range ef.Sections {
		if s.Flags&elf.SHF_ALLOC != 0 && s.Type != elf.SHT_NOBITS && int64(s.Offset+s.FileSize) > end {
			return nil, 0, false
		}
	}
	if ef.Class == elf.ELFCLASS64 {
		bo.PutUint64(hdr[shoff:], 0)
	} else {
		bo.PutUint32(hdr[shoff:], 0)
	}
	bo.PutUint16(hdr[shnum:], 0)   // e_shnum
	bo.PutUint16(hdr[shnum+2:], 0) // e_shstrndx: SHN_UNDEF
	return hdr, end, true
}

// uploadReader reads what is sent of f: hdr, then the rest of its first
// end bytes (all of them when hdr is nil).
func uploadReader(f *os.File, hdr []byte, end int64) io.Reader {
	if hdr == nil {
		return io.NewSectionReader(f, 0, end)
	}
	return io.MultiReader(bytes.NewReader(hdr), io.NewSectionReader(f, int64(len(hdr)), end-int64(len(hdr))))
}
