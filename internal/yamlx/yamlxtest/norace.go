//go:build !race

package yamlxtest

const timeScale = 1
