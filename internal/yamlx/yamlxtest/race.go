//go:build race

package yamlxtest

// race: the race detector makes code 5 to 20 times slower, so time
// bounds are scaled by timeScale.
const timeScale = 10
