package docsnippets

// Packages the documentation shows that no module of the repository
// requires; requiring them here lets the blocks that use them compile.
import (
	_ "github.com/gofiber/contrib/jwt"
	_ "github.com/labstack/echo-jwt/v4"
)
