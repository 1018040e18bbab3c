// A real servlet container for the hardening tests: embedded Apache Tomcat 9 (Debian's
// libtomcat9-java), run as a single-file Java program. It answers every request with
// JSON describing what a servlet sees: the raw request URI, and the servlet path that
// Tomcat derives from it (`;` path parameters removed, then `.`/`..` resolved, so
// `/x/..;/admin` is `/admin` to the application). Prints the port it listens on (first
// line of stdout), then serves until killed.

import java.io.IOException;
import java.util.Collections;
import javax.servlet.http.HttpServlet;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;
import org.apache.catalina.Context;
import org.apache.catalina.connector.Connector;
import org.apache.catalina.startup.Tomcat;

public class TomcatEcho {
    static String quote(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    public static void main(String[] args) throws Exception {
        Tomcat tomcat = new Tomcat();
        tomcat.setBaseDir(args[0]);
        Connector connector = new Connector();
        connector.setPort(0);
        connector.setProperty("address", "127.0.0.1");
        tomcat.setConnector(connector);
        Context ctx = tomcat.addContext("", null);
        Tomcat.addServlet(ctx, "echo", new HttpServlet() {
            @Override
            protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                StringBuilder headers = new StringBuilder("{");
                for (String name : Collections.list(req.getHeaderNames())) {
                    if (headers.length() > 1) headers.append(',');
                    headers.append(quote(name.toLowerCase())).append(':').append(quote(req.getHeader(name)));
                }
                headers.append('}');
                String body = "{\"request_uri\":" + quote(req.getRequestURI())
                    + ",\"servlet_path\":" + quote(req.getServletPath())
                    + ",\"path_info\":" + quote(req.getPathInfo())
                    + ",\"method\":" + quote(req.getMethod())
                    + ",\"headers\":" + headers + "}";
                resp.setContentType("application/json");
                resp.getWriter().write(body);
            }
        });
        ctx.addServletMappingDecoded("/*", "echo");
        tomcat.start();
        System.out.println(connector.getLocalPort());
        System.out.flush();
        tomcat.getServer().await();
    }
}
