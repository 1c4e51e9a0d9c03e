// Command call signs a JWT for the user alice, calls add on the server at
// the URL given as its argument and prints the result as JSON. It first
// checks that a token signed with another key is refused with 401.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"os"
	"time"

	"example.com/app/contract"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/golang-jwt/jwt/v5"
)

func token(key string) string {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "alice",
		"exp": time.Now().Add(time.Minute).Unix(),
	})
	s, err := t.SignedString([]byte(key))
	if err != nil {
		log.Fatal(err)
	}
	return s
}

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: call URL")
	}
	url := os.Args[1]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	_, err := client.Dial(ctx, url, client.Options{Token: token("not-the-server-key-not-the-server-key"), NoReconnect: true})
	var de *client.DialError
	if !errors.As(err, &de) || de.Status != 401 {
		log.Fatalf("a token signed with another key: %v, want the upgrade refused with 401", err)
	}

	c, err := client.Dial(ctx, url, client.Options{Token: token(os.Getenv("APP_JWT_SECRET")), NoReconnect: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	res, err := contract.Add.Call(ctx, c, contract.AddParams{A: 2, B: 40})
	if err != nil {
		log.Fatal(err)
	}
	json.NewEncoder(os.Stdout).Encode(res)
}
