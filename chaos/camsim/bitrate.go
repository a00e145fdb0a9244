package camsim

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseBitrate reads a bit rate in bit/s: a positive number with an
// optional k or M suffix (decimal: 4M = 4000000, 500k = 500000), at most
// 10 Gbit/s.
func ParseBitrate(s string) (int, error) {
	mult, num := 1.0, s
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, num = 1e3, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, num = 1e6, s[:len(s)-1]
	}
	f, err := strconv.ParseFloat(num, 64)
	// Written so that NaN fails too.
	if err != nil || !(f*mult >= 1 && f*mult <= 1e10) {
		return 0, fmt.Errorf("bit rate %q: want a positive number like 4000000, 4M or 500k", s)
	}
	return int(f * mult), nil
}
