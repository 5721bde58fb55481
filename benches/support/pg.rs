//! A fresh database on the PostgreSQL test server for one bench run, dropped afterwards.

pub struct PgDb {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDb {
    /// Creates `fo_bench_<what>_<pid>_<nanos>` next to the database of `admin_url`.
    pub async fn create(admin_url: &str, what: &str) -> PgDb {
        use sqlx::Connection;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("fo_bench_{what}_{}_{nanos}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|err| {
                panic!("PostgreSQL test server: {err} (scripts/test-servers.sh start)")
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        let (prefix, _) = admin_url.rsplit_once('/').unwrap();
        PgDb {
            admin_url: admin_url.to_string(),
            url: format!("{prefix}/{name}"),
            name,
        }
    }

    /// Drops the database (with FORCE: open connections do not keep it).
    pub async fn drop(&self) {
        use sqlx::Connection;
        match sqlx::PgConnection::connect(&self.admin_url).await {
            Ok(mut conn) => {
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
                if let Err(err) = sqlx::query(&sql).execute(&mut conn).await {
                    eprintln!("could not drop database {}: {err}", self.name);
                }
                let _ = conn.close().await;
            }
            Err(err) => eprintln!("could not drop database {}: {err}", self.name),
        }
    }
}
